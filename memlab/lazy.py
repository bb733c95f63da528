"""A module imported on first use, so `python run.py --name moons --status` does not pay for pandas,
matplotlib or scipy it never touches.

    pd = lazy("pandas")          # module level, where `import pandas as pd` was
    pd.DataFrame(...)            # the import happens here, once

Only attribute access triggers the import, so `pd.DataFrame`, `plt.rc_context` and
`stats.t.ppf` read exactly as before.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule(ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_module"] = None

    def _load(self) -> ModuleType:
        mod = self.__dict__["_lazy_module"]
        if mod is None:
            mod = importlib.import_module(self.__name__)
            self.__dict__["_lazy_module"] = mod
        return mod

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_lazy_module"] is not None else "not loaded yet"
        return f"<lazy module '{self.__name__}' ({state})>"


def lazy(name: str) -> ModuleType:
    """`name`, imported when one of its attributes is first read."""
    return LazyModule(name)
