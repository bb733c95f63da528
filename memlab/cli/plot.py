"""Render every plot declared in experiments/NAME.json into plots/NAME/.

    python plot.py --name moons                    # every plot, PDF (vector)
    python plot.py --name moons --format png       # as PNG, 300 dpi (--dpi to change)
    python plot.py --name moons --format html      # plots/moons/index.html: figures, grid, table, failures
    python plot.py --name moons --only interpolation boundary_100_00

Reads results/NAME.csv (and results/NAME_series.csv for per-epoch curves); plots that draw
from a dataset or a freshly fitted model alone (dataset_2d, boundary_2d, ...) need no results.
A plot that fails is named on stderr and the others are still drawn; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import os
import sys

from memlab.errors import UserError


def main(argv=None) -> int:
    from memlab.log import pipe_safe
    return pipe_safe(_main, argv)      # `python plot.py ... | head` ends quietly


def _main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--name", required=True, help="experiment: experiments/NAME.json (or a run stored with --as NAME)")
    ap.add_argument("--format", default="pdf", choices=("pdf", "png", "svg", "html"),
                    help="file format (default pdf); html writes the report page plots/NAME/index.html")
    ap.add_argument("--dpi", type=int, help="raster resolution (default 300 for png, 150 for the page's figures)")
    ap.add_argument("--only", nargs="+", metavar="PLOT", help="render only the plots with these names")
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from memlab.plotting import render_experiment
    try:
        out = render_experiment(args.name, fmt=args.format, only=args.only, dpi=args.dpi)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in out.written:
        print(path)
    for fig in out.failed:
        print(f"error: plot '{fig.spec['name']}' ({fig.spec['type']}) failed: {fig.error}", file=sys.stderr)
    if out.failed:
        print(f"{len(out.failed)} of {len(out.figures)} plots failed: "
              f"{', '.join(f.spec['name'] for f in out.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
