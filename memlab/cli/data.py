"""Materialize named datasets into datasets/NAME.npz.

    python data.py                              # the default (offline) datasets
    python data.py --name mnist cifar10         # only these (download, verify, cache)
    python data.py --name mnist --source DIR    # from already-downloaded archives in DIR
    python data.py --list                       # every name, its shape, whether it is there
                                                # (and your own datasets/NAME.npz files: user)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from memlab import datasets
from memlab.errors import UserError


def list_datasets() -> None:
    rows = []
    for name in sorted([*datasets.DATASETS, *datasets.user_files()]):
        spec = datasets.spec(name)
        st, shape, description = datasets.status(name), spec.shape, spec.description
        if spec.kind == "user":
            try:
                shape = datasets.user.read(datasets.path(name))["X"].shape
            except UserError as e:
                st, shape = "user file, invalid", None
                description = f"{e.message} (key '{e.key}')" if e.key else e.message
        elif st == "materialized":
            import numpy as np
            with np.load(datasets.path(name)) as f:
                shape = f["X"].shape
        shape = "x".join(str(s) for s in shape) if shape else "?"
        rows.append((name, spec.kind, shape, st, description))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:<{w[3]}}  {r[4]}")


def main(argv=None) -> int:
    from memlab.log import pipe_safe
    return pipe_safe(_main, argv)      # `python data.py ... | head` ends quietly


def _main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--name", nargs="+", metavar="NAME", help="datasets to build (default: every offline one)")
    ap.add_argument("--list", action="store_true", help="list every dataset and whether it is materialized")
    ap.add_argument("--source", type=Path, help="folder of already-downloaded archives (no internet needed)")
    ap.add_argument("--force", action="store_true", help="rebuild even if datasets/NAME.npz exists")
    args = ap.parse_args(argv)
    if args.list:
        list_datasets()
        return 0
    names = args.name or [n for n, s in datasets.DATASETS.items() if s.default]
    try:
        for n in names:
            datasets.spec(n)   # every name checked before anything is built
        for n in names:
            t0 = time.perf_counter()
            existed = datasets.path(n).exists()
            p = datasets.materialize(n, source=args.source, force=args.force)
            note = "already there" if existed and not args.force else f"built in {time.perf_counter() - t0:.1f} s"
            print(f"{n}: {p} ({note})", flush=True)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
