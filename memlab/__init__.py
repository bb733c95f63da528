"""memlab: a JSON-configured parameter-grid runner for memorization experiments.

    import memlab
    r = memlab.run("moons_demo", tasks=2)        # what `python run.py --name moons_demo --tasks 2` does
    r.table                                       # the results DataFrame
    memlab.plot("moons_demo", only="interpolation")

The API (memlab.api) is imported on first use, so `import memlab` stays cheap for workers and
for the command-line tools.
"""
__version__ = "0.1.0"

_API = ("run", "results", "plot", "load", "Run", "Status")
__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name in _API:
        from memlab import api
        return getattr(api, name)
    raise AttributeError(f"module 'memlab' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
