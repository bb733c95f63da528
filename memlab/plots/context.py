"""What a plot function may read besides the results table, and the table's derived columns.

    python plot.py --name moons     # builds one PlotContext, then renders every plot spec
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlab import datasets
from memlab.errors import UserError
from memlab.lazy import lazy
from memlab.paths import RESULTS_DIR

pd = lazy("pandas")


@dataclass
class PlotContext:
    name: str                         # the experiment's name (results/NAME.csv)
    experiment: object = None         # memlab.config.Experiment, or None outside an experiment
    series: pd.DataFrame | None = None   # results/NAME_series.csv: one row per (trial, epoch)
    results_dir: Path | None = None   # where NAME/artifacts/ lives (default: the root's results/)

    def artifact_path(self, key: str) -> Path:
        return Path(self.results_dir or RESULTS_DIR()) / self.name / "artifacts" / f"{key}.npz"

    def artifact(self, key: str) -> dict[str, np.ndarray]:
        """The arrays a trial returned under "artifacts" (saved as results/NAME/artifacts/KEY.npz)."""
        path = self.artifact_path(key)
        if not path.exists():
            raise UserError(f"no artifact for trial {key}: {path} does not exist",
                            fix=f"rerun the experiment (`python run.py --name {self.name}`); a trial "
                                f"whose module returns no 'artifacts' has none")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    def load_dataset(self, name: str, **kw) -> datasets.Dataset:
        return datasets.load_dataset(name, **kw)


def _rows(name: str, split: str) -> float:
    """Rows of dataset NAME (in `split`), or NaN with a warning if it cannot be read here."""
    try:
        if split in (None, "all") or (isinstance(split, float) and np.isnan(split)):
            return float(datasets.n_samples(name))
        return float(datasets.load_dataset(name, split=split).y.shape[0])
    except UserError as e:
        # The results may come from another machine (an unzipped results folder): a plot
        # that does not use n_samples must still work here.
        warnings.warn(f"n_samples of '{name}' unknown, left empty: {e}", stacklevel=3)
        return float("nan")


def add_derived_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add `interpolated` (score == 1.0) and `n_samples` (rows of the trial's dataset).

    A column the trial returned itself is kept as it is.  Returns a new frame.
    """
    df = df.copy()
    if "score" in df and "interpolated" not in df:
        df["interpolated"] = df["score"] == 1.0
    if "dataset" in df and "n_samples" not in df:
        split = df["split"] if "split" in df else pd.Series("all", index=df.index)
        pairs = pd.DataFrame({"dataset": df["dataset"], "split": split.fillna("all")})
        sizes = {(d, s): _rows(d, s) for d, s in pairs.drop_duplicates().itertuples(index=False)
                 if isinstance(d, str)}
        n = [sizes.get((d, s), float("nan")) for d, s in pairs.itertuples(index=False)]
        n = pd.Series(n, index=df.index)
        df["n_samples"] = n.astype(int) if n.notna().all() else n
    return df
