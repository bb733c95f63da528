"""Crash-safe result records, merged into tables; what is done, failed and pending.

    results/NAME/records/*.jsonl    one line per finished trial, one file per worker process
    results/NAME/artifacts/KEY.npz  arrays a trial returned under "artifacts"
    results/NAME.csv                one row per finished trial (merged, written atomically)
    results/NAME_series.csv         per-epoch series in long form (when trials return "series")

Records are appended and flushed by the process that ran the trial, and never rewritten, so a
crash, `kill -9`, a failed array task or a full disk loses at most the trial in flight.  A torn
last line (a writer killed mid-write) is skipped with a warning.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from memlab import io
from memlab.params import plain
from memlab.paths import RESULTS_DIR

SPECIAL_KEYS = ("series", "artifacts")


@cache
def provenance() -> dict:
    """Where and with what a result was computed: git commit, dirty flag, versions, host."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("sklearn", "torch", "jax", "numba"):
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", "?")
    return {"git": git("rev-parse", "--short=12", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "host": socket.gethostname(), "versions": versions}


@dataclass
class Summary:
    """What a worker reports back for one trial (small: it crosses process boundaries)."""
    key: str
    index: int
    status: str
    seconds: float
    error: str | None = None


class RecordWriter:
    """Appends records to one file of its own, opened on first use, flushed per record."""

    def __init__(self, records_dir: Path, tag: str):
        self.path = Path(records_dir) / f"{tag}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self._f = None

    def write(self, record: dict) -> None:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write(json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n")
        self._f.flush()
        if os.environ.get("MEMLAB_FSYNC") == "1":   # survive power loss, not just process death
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _split_result(result) -> tuple[dict, dict | None, dict | None]:
    if not isinstance(result, dict):
        raise TypeError(f"trial must return a dict, got {type(result).__name__}")
    flat = {k: plain(v) for k, v in result.items() if k not in SPECIAL_KEYS}
    series = result.get("series")
    if series is not None:
        series = {k: plain(v) for k, v in series.items()}
        lengths = {len(v) for v in series.values()}
        if len(lengths) > 1:
            raise ValueError(f"trial's series lists have different lengths: "
                             f"{ {k: len(v) for k, v in series.items()} }")
    return flat, series, result.get("artifacts")


class Store:
    """The results of one experiment: records in, tables out."""

    def __init__(self, name: str, results_dir: Path | None = None):
        self.name = name
        self.base = Path(results_dir or RESULTS_DIR())
        self.dir = self.base / name
        self.records_dir = self.dir / "records"
        self.artifacts_dir = self.dir / "artifacts"
        self.csv_path = self.base / f"{name}.csv"
        self.series_path = self.base / f"{name}_series.csv"

    # ---------------------------------------------------------------- writing ---
    def record(self, writer: RecordWriter, trial, outcome, seconds: float, started: float) -> Summary:
        """Write one trial's record; outcome is the trial's dict or the exception it raised."""
        rec = {"key": trial.key, "_index": trial.index, "params": trial.params, "seconds": round(seconds, 6),
               "started": round(started, 3), "pid": os.getpid(), "prov": provenance()}
        if isinstance(outcome, BaseException):
            rec.update(status="error", error={"type": type(outcome).__name__, "message": str(outcome),
                       "traceback": "".join(traceback.format_exception(outcome))})
        else:
            try:
                flat, series, artifacts = _split_result(outcome)
                if artifacts:
                    self.save_artifacts(trial.key, artifacts)
                    flat["_artifacts"] = f"artifacts/{trial.key}.npz"
                rec.update(status="ok", result=flat)
                if series is not None:
                    rec["series"] = series
            except Exception as e:  # a malformed result is the trial's failure, not the runner's
                return self.record(writer, trial, e, seconds, started)
        writer.write(rec)
        err = rec.get("error")
        return Summary(trial.key, trial.index, rec["status"], seconds,
                       f"{err['type']}: {err['message']}" if err else None)

    def save_artifacts(self, key: str, arrays: dict) -> None:
        with io.atomic_path(self.artifacts_dir / f"{key}.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})

    # ---------------------------------------------------------------- reading ---
    def records(self):
        """Every record on disk, in no particular order; torn or corrupt lines are skipped."""
        if not self.records_dir.exists():
            return
        for path in sorted(self.records_dir.glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        rec = json.loads(line)
                        if not line.endswith("\n"):
                            raise ValueError("no newline")
                    except ValueError:
                        warnings.warn(f"{path}:{lineno}: torn or corrupt record ignored "
                                      f"(a writer was killed mid-write); that trial will rerun", stacklevel=2)
                        continue
                    yield rec

    def state(self) -> "State":
        """The best record per key: an `ok` record wins over any error."""
        ok, failed, duplicates = {}, {}, 0
        for rec in self.records():
            key = rec.get("key")
            if rec.get("status") == "ok":
                if key in ok:
                    duplicates += 1
                else:
                    ok[key] = rec
            else:
                failed[key] = rec
        for key in ok:
            failed.pop(key, None)
        return State(ok, failed, duplicates)

    # ---------------------------------------------------------------- merging ---
    def merge(self, trials, state: "State | None" = None) -> tuple[int, Path | None]:
        """Write results/NAME.csv (and NAME_series.csv) for the given grid's finished trials.

        `_index` is the trial's position in the *current* grid, so editing the grid keeps rows
        consistent; records of trials no longer in the grid stay on disk but are left out.
        """
        import pandas as pd
        state = state or self.state()
        rows, series_frames, param_cols = [], [], {}
        for t in trials:
            rec = state.ok.get(t.key)
            if rec is None:
                continue
            param_cols.update(dict.fromkeys(t.params))
            row = {**{k: _cell(v) for k, v in t.params.items()}, "_index": t.index, "_key": t.key}
            row.update({k: _cell(v) for k, v in rec.get("result", {}).items()})
            rows.append(row)
            if rec.get("series"):
                s = pd.DataFrame(rec["series"])
                # a series named like a parameter keeps its values under NAME_series
                s = s.rename(columns={c: f"{c}_series" for c in s.columns if c in t.params})
                s.insert(0, "_key", t.key)
                s.insert(0, "_index", t.index)
                for k, v in reversed(t.params.items()):
                    s.insert(2, k, _cell(v))
                series_frames.append(s)
        if not rows:
            return 0, None
        df = pd.DataFrame(rows)
        first = [c for c in df.columns if c in param_cols] + ["_index", "_key"]
        df = df[first + [c for c in df.columns if c not in first]]
        with io.atomic_path(self.csv_path, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
        if series_frames:
            with io.atomic_path(self.series_path, suffix=".csv") as tmp:
                pd.concat(series_frames, ignore_index=True).to_csv(tmp, index=False)
        return len(df), self.csv_path


def _cell(v):
    """A CSV cell: lists and dicts as JSON text, scalars as they are."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


@dataclass
class State:
    ok: dict = field(default_factory=dict)       # key -> record
    failed: dict = field(default_factory=dict)   # key -> latest error record (keys without an ok one)
    duplicates: int = 0                          # extra ok records of an already-finished key
