"""A scikit-learn-compatible classifier base that does not import scikit-learn.

Importing `sklearn.base` costs about 3.5 s (it pulls in scipy.stats), which every worker
process and every cluster array task would pay before its first Algorithm 2 trial.  The
estimator only needs what scikit-learn's conventions ask of it: `get_params`/`set_params`
read from `__init__`'s signature (so `sklearn.base.clone`, `GridSearchCV` and
`cross_val_score` work on it), `score` as accuracy, and `__sklearn_tags__` (built by
scikit-learn itself, imported only when a scikit-learn tool asks for the tags).
"""
from __future__ import annotations

import inspect

import numpy as np


class LightClassifier:
    """Base for estimators whose `__init__` stores each argument under its own name."""

    _estimator_type = "classifier"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        # read once per class: a multiclass fit clones one binary estimator per class, and
        # inspect.signature took 2 ms of a 35 ms fit (MNIST stand-in, n_iter 20)
        names = cls.__dict__.get("_param_names")
        if names is None:
            sig = inspect.signature(cls.__init__)
            names = tuple(sorted(p.name for p in sig.parameters.values()
                                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)))
            cls._param_names = names
        return list(names)

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def clone(self):
        """A new, unfitted estimator with the same parameters (as sklearn.base.clone)."""
        return type(self)(**self.get_params())

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of predict(X) against y (weighted by sample_weight)."""
        right = np.asarray(self.predict(X)) == np.asarray(y)
        return float(np.average(right, weights=sample_weight))

    def __sklearn_tags__(self):
        from sklearn.base import BaseEstimator, ClassifierMixin

        class Tagged(ClassifierMixin, BaseEstimator):
            pass
        return Tagged().__sklearn_tags__()

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k, inspect.Parameter.empty) != v]
        return f"{type(self).__name__}({', '.join(shown)})"
