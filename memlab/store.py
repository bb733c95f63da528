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
RESERVED = ("_index", "_key", "_seed", "_code", "_git", "_artifacts")   # columns memlab writes itself
SCHEME = 2        # records with "v": 2 carry keys of resolved parameters + trial module (memlab >= 0.2)


def _git(repo: Path, *args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@cache
def git_state(folder: str) -> dict:
    """The git commit of the checkout holding `folder`, and whether it differs from it.

    Untracked files count as changes (a new trial module beside the experiments is code too);
    ignored ones (results/, datasets/) do not.
    """
    top = _git(Path(folder), "rev-parse", "--show-toplevel")
    if not top:
        return {}
    return {"git": _git(Path(top), "rev-parse", "--short=12", "HEAD") or None,
            "dirty": bool(_git(Path(top), "status", "--porcelain", "--untracked-files=normal")), "repo": top}


@cache
def provenance(trial_file: str | None = None) -> dict:
    """Where and with what a result was computed: memlab's git commit and dirty flag (and the
    trial module's, when it lives in another checkout), versions, host."""
    mine = git_state(str(Path(__file__).resolve().parent.parent))
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("sklearn", "torch", "jax", "numba"):
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", "?")
    out = {"git": mine.get("git"), "dirty": mine.get("dirty", False), "host": socket.gethostname(),
           "versions": versions}
    if trial_file:
        theirs = git_state(str(Path(trial_file).resolve().parent))
        if theirs and theirs.get("repo") != mine.get("repo"):
            out.update(trial_git=theirs["git"], trial_dirty=theirs["dirty"])
    return out


def git_label(prov: dict) -> str | None:
    """'abc123def456' or 'abc123def456+dirty' (the `_git` column)."""
    if not prov or not prov.get("git"):
        return None
    return prov["git"] + ("+dirty" if prov.get("dirty") else "")


@dataclass
class Summary:
    """What a worker reports back for one trial (small: it crosses process boundaries)."""
    key: str
    index: int
    status: str
    seconds: float
    error: str | None = None


class RecordWriteError(OSError):
    """A record could not be written (disk full, folder gone or read-only): the run must stop."""


class RecordWriter:
    """Appends records to one file of its own, opened on first use, flushed per record."""

    def __init__(self, records_dir: Path, tag: str):
        self.path = Path(records_dir) / f"{tag}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self._f = None

    def write(self, line: str) -> None:
        """Append one encoded record (a JSON line); a failure raises RecordWriteError."""
        try:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(line)
            self._f.flush()
            if os.environ.get("MEMLAB_FSYNC") == "1":   # survive power loss, not just process death
                os.fsync(self._f.fileno())
        except OSError as e:
            raise RecordWriteError(e.errno, f"cannot write the record of a finished trial: {e.strerror}",
                                   str(e.filename or self.path)) from e

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _split_result(result, params: dict) -> tuple[dict, dict | None, dict | None]:
    if not isinstance(result, dict):
        raise TypeError(f"trial must return a dict, got {type(result).__name__}")
    flat = {}
    for k, v in result.items():
        if k in SPECIAL_KEYS:
            continue
        if not isinstance(k, str):
            raise TypeError(f"trial returned a key that is not a string: {k!r} ({type(k).__name__})")
        if k in params or k in RESERVED:
            raise ValueError(f"trial returned '{k}', which is the name of a "
                             + ("parameter" if k in params else "column memlab writes itself")
                             + f": rename that result (e.g. '{k.lstrip('_')}_out')")
        flat[k] = _recordable(plain(v), k)
    series = result.get("series")
    if series is not None:
        if not isinstance(series, dict):
            raise TypeError(f"trial's 'series' must be a dict of lists, got {type(series).__name__}")
        series = {k: _recordable(plain(v), f"series.{k}") for k, v in series.items()}
        lengths = {len(v) if isinstance(v, list) else -1 for v in series.values()}
        if -1 in lengths:
            raise TypeError("trial's 'series' values must be lists: "
                            + ", ".join(k for k, v in series.items() if not isinstance(v, list)))
        if len(lengths) > 1:
            raise ValueError(f"trial's series lists have different lengths: "
                             f"{ {k: len(v) for k, v in series.items()} }")
    artifacts = result.get("artifacts")
    if artifacts is not None and not isinstance(artifacts, dict):
        raise TypeError(f"trial's 'artifacts' must be a dict of arrays, got {type(artifacts).__name__}")
    return flat, series, artifacts


def _recordable(value, where: str):
    """`value` if JSON can hold it, else a TypeError naming the key and the type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        for i, v in enumerate(value):
            _recordable(v, f"{where}[{i}]")
        return value
    if isinstance(value, dict):
        for k, v in value.items():
            _recordable(v, f"{where}.{k}")
        return value
    raise TypeError(f"trial returned '{where}' as {type(value).__name__} ({value!r:.60}), which cannot be recorded: "
                    "return numbers, strings, booleans, None, lists or dicts of them")


def _encode(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"), allow_nan=True) + "\n"


def error_info(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


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
    def record(self, writer: RecordWriter, trial, outcome, seconds: float, started: float,
               code: str = "", trial_id: str = "", prov: dict | None = None, data: dict | None = None) -> Summary:
        """Write one trial's record; outcome is the trial's dict, the exception it raised, or an
        error dict {"type", "message"} (how its worker died, a timeout).

        Everything that can go wrong with the outcome (a value JSON cannot hold, a result named
        like a parameter, an object array) makes this trial's record an error record; only a
        failure to write (RecordWriteError: disk full...) propagates.
        """
        rec = {"v": SCHEME, "key": trial.key, "_index": trial.index, "params": trial.params,
               "seed": trial.seed, "trial": trial_id, "code": code, "seconds": round(seconds, 6),
               "started": round(started, 3), "pid": os.getpid(), "prov": prov or provenance()}
        if data:
            rec["data"] = data        # {dataset: fingerprint} of the files the trial read
        if isinstance(outcome, BaseException):
            rec.update(status="error", error=error_info(outcome))
        elif isinstance(outcome, dict) and outcome.get("__memlab_error__"):
            rec.update(status="error", error={k: outcome[k] for k in ("type", "message", "traceback") if k in outcome})
        else:
            try:
                flat, series, artifacts = _split_result(outcome, trial.params)
                if artifacts:
                    check_artifacts(artifacts)
                    flat["_artifacts"] = f"artifacts/{trial.key}.npz"
                rec.update(status="ok", result=flat)
                if series is not None:
                    rec["series"] = series
                line = _encode(rec)
                if artifacts:
                    self.save_artifacts(trial.key, artifacts)
            except OSError as e:
                raise RecordWriteError(e.errno, f"cannot save the artifacts of a finished trial: {e.strerror}",
                                       str(e.filename or self.artifacts_dir)) from e
            except Exception as e:  # a malformed result is the trial's failure, not the runner's
                return self.record(writer, trial, e, seconds, started, code, trial_id, prov)
        if rec["status"] == "error":
            line = _encode(rec)
        writer.write(line)
        err = rec.get("error")
        return Summary(trial.key, trial.index, rec["status"], seconds,
                       f"{err['type']}: {err['message']}" if err else None)

    def save_artifacts(self, key: str, arrays: dict) -> None:
        arrays = check_artifacts(arrays)
        with io.atomic_path(self.artifacts_dir / f"{key}.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)

    def save_experiment(self, effective: dict, run: dict) -> Path:
        """The experiment as run, beside its results: results/NAME/experiment.json (the latest
        run) and results/NAME/runs/STAMP.json (every run), so a table traces to what made it."""
        doc = json.dumps({**effective, "run": run}, indent=1, default=str) + "\n"
        io.write_text(self.dir / "runs" / f"{run['stamp']}.json", doc)
        io.write_text(self.dir / "experiment.json", doc)
        return self.dir / "experiment.json"

    # ---------------------------------------------------------------- reading ---
    def records(self, paths=None):
        """Every record on disk (or in `paths`), in no particular order.

        A line that is torn (a writer killed mid-write), not UTF-8, not JSON, or not a record is
        skipped, with one warning per file naming it and the lines: no command stops on it.
        """
        if paths is None:
            if not self.records_dir.exists():
                return
            paths = sorted(self.records_dir.glob("*.jsonl"))
        for path in paths:
            bad = []
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    rec = parse_record(raw)
                    if rec is None:
                        bad.append(lineno)
                        continue
                    yield rec
            if bad:
                where = f"line {bad[0]}" if len(bad) == 1 else \
                    f"lines {', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''} ({len(bad)} lines)"
                warnings.warn(f"{path}: {where}: torn or corrupt record ignored (a writer killed mid-write, or "
                              "the file was edited); those trials will rerun", stacklevel=2)

    def state(self, code: str | None = None) -> "State":
        """The best record per key: an `ok` record wins over any error; among ok records the one
        computed by `code` (the current trial code), else the latest."""
        ok, failed, duplicates = {}, {}, 0
        for rec in self.records():
            key = rec["key"]
            if rec["status"] == "ok":
                old = ok.get(key)
                if old is None:
                    ok[key] = rec
                    continue
                duplicates += 1
                if _better(rec, old, code):
                    ok[key] = rec
            else:
                failed[key] = rec
        for key in ok:
            failed.pop(key, None)
        return State(ok, failed, duplicates)

    # ---------------------------------------------------------------- merging ---
    def merge(self, trials, results: dict | None = None) -> tuple[int, Path | None]:
        """Write results/NAME.csv (and NAME_series.csv) for the given grid's finished trials.

        `results`: trial key -> its ok record (default: what is on disk).  Every resolved
        parameter is a column, then `_index` (the trial's position in the *current* grid, so
        editing the grid keeps rows consistent), `_key`, the trial's values, and `_code` / `_git`
        (the trial code's fingerprint and the commit it ran at).  Records of trials no longer in
        the grid stay on disk but are left out.
        """
        import pandas as pd
        results = self.state().ok if results is None else results
        rows, series_frames, param_cols = [], [], {}
        for t in trials:
            rec = results.get(t.key)
            if rec is None:
                continue
            param_cols.update(dict.fromkeys(t.params))
            row = {**{k: _cell(v) for k, v in t.params.items()}, "_index": t.index, "_key": t.key}
            row.update({k: _cell(v) for k, v in rec.get("result", {}).items()})
            row.update(_code=rec.get("code") or "unknown", _git=git_label(rec.get("prov")))
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
        last = ["_code", "_git"]
        df = df[first + [c for c in df.columns if c not in first and c not in last] + last]
        with io.atomic_path(self.csv_path, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
        from memlab.export import write_parquet
        write_parquet(df, self.base / f"{self.name}.parquet")     # beside the CSV when pyarrow is there
        if series_frames:
            with io.atomic_path(self.series_path, suffix=".csv") as tmp:
                pd.concat(series_frames, ignore_index=True).to_csv(tmp, index=False)
        return len(df), self.csv_path


def parse_record(raw: bytes) -> dict | None:
    """One line of a record file, or None when it is not a whole, valid record."""
    if not raw.endswith(b"\n"):
        return None
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or rec.get("status") not in ("ok", "error"):
        return None
    if not isinstance(rec.get("params", {}), dict) or not isinstance(rec.get("result", {}), dict):
        return None
    if rec["status"] == "error" and not isinstance(rec.get("error"), dict):
        rec["error"] = {"type": "Error", "message": str(rec.get("error"))}
    return rec


def _better(new: dict, old: dict, code: str | None) -> bool:
    """Whether ok record `new` should stand for its trial instead of `old`."""
    if code:
        new_cur, old_cur = new.get("code") == code, old.get("code") == code
        if new_cur != old_cur:
            return new_cur
    return new.get("started", 0) > old.get("started", 0)


def check_artifacts(arrays: dict) -> dict:
    """Arrays a trial returned under "artifacts", checked: they must load back without pickle."""
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.hasobject:
            raise TypeError(f"artifact '{k}' is an array of Python objects, which cannot be read back without "
                            "pickle: return numeric (or string) arrays, one artifact per array")
        out[str(k)] = a
    return out


def _cell(v):
    """A CSV cell: lists and dicts as JSON text, scalars as they are."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


@dataclass
class State:
    ok: dict = field(default_factory=dict)       # key -> record
    failed: dict = field(default_factory=dict)   # key -> latest error record (keys without an ok one)
    duplicates: int = 0                          # extra ok records of an already-finished key
