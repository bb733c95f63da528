"""Plan a run (what is done, failed, pending), hand the pending trials to a backend, merge.

The entry point run.py parses arguments and calls `run`, `dry_run` or `status` from here.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

from memlab import backends, datasets
from memlab.config import MAX_TRIALS
from memlab.errors import UserError
from memlab.log import log, run_log
from memlab.params import legacy_key
from memlab.pool import WorkerStartError
from memlab.store import SCHEME, RecordWriteError, State, Store, Summary, git_state


@dataclass
class RunOptions:
    backend: str = "joblib"
    tasks: int = 1
    retry_failed: bool = False
    fail_fast: bool = False
    wait: bool = True
    progress: bool = True
    scheduler_args: list = field(default_factory=list)   # after `--`, passed to qsub/sbatch untouched
    resources: dict = field(default_factory=dict)        # command-line resource flags (override the file's)
    timeout: float | None = None                          # seconds a trial may run (--trial-timeout / "timeout")
    rerun_stale: bool = False
    max_trials: int = MAX_TRIALS


@dataclass
class Plan:
    trials: list            # the whole grid, in order
    state: State
    results: dict           # key -> the ok record standing for that trial of the grid
    stale: set              # keys whose result was computed by other trial code (or unknown code)
    pending: list           # trials to run now
    legacy: int = 0         # results adopted from records of memlab <= 0.1's key scheme

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.key in self.state.failed and t.key not in self.results]


def match(exp, trials: list, state: State) -> tuple[dict, set, int]:
    """The ok record of each trial (by key), which are stale, and how many came from legacy records.

    Records written before trial identity covered the module and the declared defaults (no
    "v" field) are matched by their old key (the grid's values alone) and count as stale:
    their code and defaults are unknown, so `--rerun-stale` recomputes them.
    """
    results, stale, legacy, now = {}, set(), {}, {}
    for key, rec in state.ok.items():
        if rec.get("v") != SCHEME:
            legacy[key] = rec
    for t in trials:
        rec = state.ok.get(t.key)
        if rec is not None and rec.get("v") == SCHEME:
            results[t.key] = rec
            if rec.get("code") != exp.code or data_changed(rec, now):
                stale.add(t.key)
    adopted = 0
    if legacy:
        for t, point in zip(trials, exp.grid_points()):
            rec = legacy.get(legacy_key(point)) if t.key not in results else None
            if rec is not None:
                results[t.key] = rec
                stale.add(t.key)
                adopted += 1
    return results, stale, adopted


def data_changed(rec: dict, now: dict) -> bool:
    """Whether a dataset file the record's trial read has other contents now (the fingerprints
    the worker recorded, memlab.datasets.fingerprint; a file since deleted is not a change).
    `now`: name -> current fingerprint, filled as names come up (one look per name)."""
    for name, fp in (rec.get("data") or {}).items():
        if name not in now:
            now[name] = datasets.fingerprint(name)
        if now[name] is not None and now[name] != fp:
            return True
    return False


def plan(exp, store: Store, retry_failed: bool = False, exclude=(), rerun_stale: bool = False) -> Plan:
    """`exclude`: keys not to run now (trials a queued or running cluster job will run)."""
    trials = list(exp.trials())
    state = store.state(exp.code)
    results, stale, adopted = match(exp, trials, state)
    keep = set(results) - (stale if rerun_stale else set())
    skip = keep | (set() if retry_failed else state.failed.keys() - set(results)) | set(exclude)
    return Plan(trials, state, results, stale, [t for t in trials if t.key not in skip], adopted)


def stale_note(p: Plan, name: str) -> str:
    if not p.stale:
        return ""
    legacy = f", {p.legacy} of them from records of an older memlab (code unknown)" if p.legacy else ""
    now = {}
    on_data = sum(data_changed(p.results[k], now) for k in p.stale if k in p.results)
    why = ("by other trial code" if not on_data else
           "on a dataset file that has changed since" if on_data == len(p.stale) else
           f"by other trial code or ({on_data}) on a dataset file that has changed since")
    return (f"{len(p.stale)} finished results were computed {why}{legacy}: "
            f"they stay in the table; rerun them with `python run.py --name {name} --rerun-stale`")


class FailFast(Exception):
    pass


class Reporter:
    """Progress bar (done/total, rate, ETA) and failures printed the moment they happen."""

    def __init__(self, total: int, done_before: int, fail_fast: bool, enabled: bool):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done_before, unit="trial", disable=not enabled,
                        dynamic_ncols=True, smoothing=0.05, mininterval=0.5)
        self.fail_fast, self.ok, self.failed = fail_fast, 0, []

    def note(self, message: str) -> None:
        log.warning(message, extra={"stderr": True})

    def __call__(self, s: Summary) -> None:
        self.bar.update(1)
        if s.status == "ok":
            self.ok += 1
            log.debug(f"trial {s.index} ({s.key}) ok in {s.seconds:.2f} s")
            return
        self.failed.append(s)
        log.warning(f"trial {s.index} ({s.key}) failed: {s.error}")
        if self.fail_fast:
            raise FailFast(s)

    def close(self):
        self.bar.close()


class RunLock:
    """One run.py per experiment at a time; wait for workers orphaned by a killed run."""

    def __init__(self, store: Store):
        store.dir.mkdir(parents=True, exist_ok=True)
        self.store, self.f = store, open(store.dir / "run.lock", "a+")

    def __enter__(self):
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.seek(0)
            raise UserError(f"another run of '{self.store.name}' is in progress (pid {self.f.read().strip() or '?'})",
                            file=self.f.name, fix="wait for it, or stop it, then run the command again") from None
        self.f.truncate(0)
        self.f.write(str(os.getpid()))
        self.f.flush()
        with open(self.store.dir / "workers.lock", "a") as w:
            try:
                fcntl.flock(w, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for the workers of an interrupted run to finish their trial...",
                         extra={"stderr": True})
                fcntl.flock(w, fcntl.LOCK_EX)
            fcntl.flock(w, fcntl.LOCK_UN)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def run(exp, opts: RunOptions) -> int:
    """Run every pending trial of `exp`; return the exit status (0: every trial of the grid done)."""
    if exp.plot_only:
        log.info(f"{exp.name}: no trials (a plot-only experiment file): `python plot.py --name {exp.name}` draws it")
        return 0
    if len(exp) > opts.max_trials:
        raise UserError(f"the grid has {len(exp):,} trials, more than a run takes ({opts.max_trials:,})",
                        file=exp.path, key="param_grid",
                        fix="split the experiment into smaller files, or raise the limit with --max-trials")
    datasets.require(exp.datasets())
    if opts.timeout is None:           # the command line's --trial-timeout wins over the file's "timeout"
        opts = dataclasses.replace(opts, timeout=exp.timeout)
    store = Store(exp.name)
    info = run_info(opts)
    kind = "local" if opts.backend == "joblib" else opts.backend
    info["log"] = str(store.dir / "logs" / f"{kind}-{info['stamp']}.log")     # what this run says
    with RunLock(store), run_log(info["log"]):
        flying = backends.in_flight(store)     # submitted with --no-wait and still in the queue
        p = plan(exp, store, opts.retry_failed, exclude=flying, rerun_stale=opts.rerun_stale)
        store.save_experiment(exp.effective(), info)
        skipped_failed = 0 if opts.retry_failed else len(p.failed)
        log.info(f"{exp.name}: {len(p.trials)} trials, {p.done} done, {len(p.pending)} to run"
                 + (f", {skipped_failed} failed before (rerun them with --retry-failed)" if skipped_failed else "")
                 + (f", {len(flying)} queued or running ({backends.describe(flying)})" if flying else "")
                 + f" [backend {opts.backend}, tasks {opts.tasks}]")
        log.debug(f"the log of this run: {info['log']}")
        n_flying = sum(t.key in flying for t in p.trials)
        rep = Reporter(len(p.trials), len(p.trials) - len(p.pending) - skipped_failed - n_flying,
                       opts.fail_fast, opts.progress)
        t0 = time.perf_counter()
        interrupted = None
        try:
            if p.pending or flying:   # a cluster backend waits for the earlier jobs too
                backends.get(opts.backend)(exp, p.pending, store, opts, rep)
        except FailFast as e:
            interrupted = f"stopped at the first failure (--fail-fast): trial {e.args[0].index}"
        except backends.Incomplete as e:
            interrupted = str(e)
        except KeyboardInterrupt:
            interrupted = "interrupted"
        except RecordWriteError as e:
            interrupted = (f"error: cannot write {e.filename}: {e.strerror}\n  fix: free space there, or make it "
                           f"writable (or set MEMLAB_ROOT to another folder), then run the same command again: "
                           f"finished trials are kept")
        except WorkerStartError as e:
            interrupted = f"error: {e}"
        finally:
            rep.close()
        return finish(exp, store, p.trials, rep, time.perf_counter() - t0, interrupted, no_wait=not opts.wait)


def run_info(opts: RunOptions) -> dict:
    """What the saved experiment says about this run: when, how, at which commit."""
    import memlab
    return {"stamp": time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6],
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, "cwd": os.getcwd(),
            "backend": opts.backend, "tasks": opts.tasks, "timeout_s": opts.timeout,
            "retry_failed": opts.retry_failed, "rerun_stale": opts.rerun_stale,
            "memlab": memlab.__version__, **git_state(os.path.dirname(os.path.abspath(memlab.__file__)))}


def finish(exp, store, trials, rep, seconds, interrupted, no_wait: bool = False) -> int:
    """Merge, summarize, and say whether the grid is done: 0 only when every trial is (or, with
    --no-wait, when every trial not done is queued or running in a cluster job)."""
    state = store.state(exp.code)
    results, stale, adopted = match(exp, trials, state)
    try:
        rows, csv = store.merge(trials, results)
    except OSError as e:
        rows, csv = len(results), None
        log.error(f"error: cannot write {e.filename or store.csv_path}: {e.strerror}\n  fix: free space there, then "
                  f"`python run.py --name {exp.name} --collect` writes the table (every finished trial is recorded)")
        interrupted = interrupted or "the table could not be written"
    failed = [t for t in trials if t.key in state.failed and t.key not in results]
    missing = len(trials) - rows - len(failed)
    if rep.ok or rep.failed:
        log.info(f"ran {rep.ok + len(rep.failed)} trials in {seconds:.1f} s: {rep.ok} ok, {len(rep.failed)} failed")
    if csv:
        log.info(f"wrote {csv} ({rows} rows)" + (f" and {store.series_path}" if store.series_path.exists() else ""))
    note = stale_note(Plan(trials, state, results, stale, [], adopted), exp.name)
    if note:
        log.info(note)
    if interrupted:
        log.warning(f"{interrupted}; {missing} trials not run yet: run the same command again to resume")
    elif missing:
        flying = backends.in_flight(store)
        if flying:
            log.warning(f"{missing} trials are not done: {len(flying)} are queued or running "
                        f"({backends.describe(flying)}); run the same command again to wait for them, "
                        f"or --collect later")
            if no_wait and len(flying) >= missing:
                missing = 0            # submitted as asked: the job has them
        else:
            log.warning(f"{missing} trials are not done: run the same command again")
    if failed:
        log.warning(f"{len(failed)} failed trials:")
        for t in failed[:20]:
            err = state.failed[t.key]["error"]
            log.warning(f"  _index {t.index} key {t.key} {t.params}: {err.get('type')}: {err.get('message')}")
        if len(failed) > 20:
            log.warning(f"  ... and {len(failed) - 20} more (python run.py --name {exp.name} --status)")
        log.warning(f"tracebacks are in {store.records_dir}; rerun them with --retry-failed")
    return 1 if failed or interrupted or missing else 0


def status(exp) -> int:
    if exp.plot_only:
        return run(exp, RunOptions())
    store = Store(exp.name)
    p = plan(exp, store)
    failed = p.failed
    print(f"{exp.name}: {len(p.trials)} trials: {p.done} done, {len(failed)} failed, "
          f"{len(p.trials) - p.done - len(failed)} pending")
    if p.stale:
        print(stale_note(p, exp.name))
    current = {t.key for t in p.trials}
    gone = sum(1 for k, r in p.state.ok.items() if k not in current and r.get("v") == SCHEME)
    if gone:
        print(f"({gone} finished trials are not in the grid as it is now (grid values, defaults or trial changed): "
              f"kept in {store.records_dir}, left out of the CSV)")
    for t in failed[:20]:
        err = p.state.failed[t.key]["error"]
        print(f"  failed: _index {t.index} {t.params}: {err.get('type')}: {err.get('message')}")
    return 0


def dry_run(exp, show: int = 5) -> int:
    if exp.plot_only:
        return run(exp, RunOptions())
    n = len(exp)
    print(f"{exp.path}: trial '{exp.trial_name}', {n:,} trials"
          + (f", stored as {exp.name}" if exp.name != exp.path.stem else "")
          + (f" (over the limit of {MAX_TRIALS:,} a run takes: split it, or run with --max-trials)"
             if n > MAX_TRIALS else ""))
    if exp.timeout:
        from memlab.units import human
        print(f"  time limit per trial: {human(exp.timeout)}")
    defaults = {k: v for k, v in exp.defaults.items() if not any(k in g for g in exp.param_grid)}
    if defaults:
        print("  defaults: " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))
    for i, point in enumerate(exp.grid_points()):
        if i >= show:
            break
        print(f"  [{i}] {point}")
    if n > show:
        print(f"  ... ({n - show:,} more)")
    names = sorted(exp.datasets())
    datasets.require([n for n in names if datasets.status(n) != "missing"])   # a bad user file: exit 2, as a run
    for name in names:
        print(f"  dataset {name}: {datasets.status(name)}")
    missing = [n for n in names if datasets.status(n) == "missing"]
    if missing:
        print(f"  fetch the missing datasets first: {datasets.make_command(missing)}")
    if n > MAX_TRIALS:
        return 0
    store = Store(exp.name)
    p = plan(exp, store)
    print(f"  {p.done} done, {len(p.failed)} failed, {len(p.pending)} to run")
    if p.stale:
        print(f"  {stale_note(p, exp.name)}")
    return 0


def collect(exp, opts: RunOptions) -> int:
    """Merge whatever records have arrived (e.g. from a --no-wait cluster run) into the CSV."""
    store = Store(exp.name)
    flying = backends.in_flight(store)
    p = plan(exp, store)
    rows, csv = store.merge(p.trials, p.results)
    print(f"{exp.name}: {p.done} of {len(p.trials)} trials done, {len(p.failed)} failed"
          + (f"; wrote {csv} ({rows} rows)" if csv else ""))
    backends.report_jobs(store, flying)
    return 0 if p.done == len(p.trials) else 1
