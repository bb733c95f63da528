"""Plot types: a registry of functions from (results table, spec, context) to a Figure."""
from memlab.plots.registry import COMMON_OPTIONS, PLOTS, option, register, validate  # noqa: F401
