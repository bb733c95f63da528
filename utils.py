"""Paths and small helpers shared by the entry points (data.py, run.py, plot.py).

Every path is relative to the working directory, as in the paper's reference code, so
`cd my_study && python /path/to/run.py --name foo` keeps its experiments, datasets,
results and plots in `my_study/`.  MEMLAB_ROOT overrides the working directory.
"""
from memlab.paths import (  # noqa: F401  (re-exported for the entry points)
    DATASETS_DIR, EXPERIMENTS_DIR, PLOTS_DIR, RESULTS_DIR, root)
