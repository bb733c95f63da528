"""Render every plot declared in experiments/NAME.json into plots/NAME/.

    python plot.py --name moons                    # every plot, PDF (vector)
    python plot.py --name moons --format png       # as PNG, 300 dpi (--dpi to change)
    python plot.py --name moons --format html      # plots/moons/index.html: figures, grid, table, failures
    python plot.py --name moons --only interpolation boundary_100_00

Reads results/NAME.csv (and results/NAME_series.csv for per-epoch curves); plots that draw
from a dataset or a freshly fitted model alone (dataset_2d, boundary_2d, ...) need no results.
A plot that fails is named on stderr and the others are still drawn; the exit status is then 1.
"""
import sys

from memlab.cli.plot import main

if __name__ == "__main__":
    sys.exit(main())
