"""Render every plot declared in experiments/NAME.json into plots/NAME/.

    python plot.py --name moons                    # every plot, PDF
    python plot.py --name moons --format png       # as PNG
    python plot.py --name moons --only interpolation boundary_n100

Reads results/NAME.csv (and results/NAME_series.csv for per-epoch curves); plots that draw
from a dataset or a freshly fitted model alone (dataset_2d, boundary_2d, ...) need no results.
"""
from __future__ import annotations

import argparse
import os
import sys

from memlab.errors import UserError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--name", required=True, help="experiment: experiments/NAME.json")
    ap.add_argument("--format", default="pdf", choices=("pdf", "png", "svg"), help="file format (default pdf)")
    ap.add_argument("--only", nargs="+", metavar="PLOT", help="render only the plots with these names")
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from memlab.plotting import render_experiment
    try:
        written = render_experiment(args.name, fmt=args.format, only=args.only)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
