"""Plot types: a registry of functions from (results table, spec, context) to a Figure.

    python plot.py --name moons     # render(spec, df, ctx) for each plot in experiments/moons.json

Importing this package registers every built-in plot type.
"""
from memlab.plots.registry import (  # noqa: F401
    COMMON_OPTIONS, PLOTS, normalized, option, register, validate)
from memlab.plots import curves, data, grid, model, weights  # noqa: F401,E402  (registers)
from memlab.plots import lectures  # noqa: F401,E402  (registers iterates, attractors)
from memlab.plots import criticality  # noqa: F401,E402  (registers training_panels, layer_heatmap)
from memlab.plots.context import PlotContext, add_derived_columns  # noqa: F401,E402
from memlab.plots.rendering import apply_query, describe_plots, render  # noqa: F401,E402
from memlab.plots.columns import check_columns, trial_columns  # noqa: F401,E402
