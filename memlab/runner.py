"""Plan a run (what is done, failed, pending), hand the pending trials to a backend, merge.

The entry point run.py parses arguments and calls `run`, `dry_run` or `status` from here.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass, field

from memlab import backends, datasets
from memlab.errors import UserError
from memlab.store import State, Store, Summary


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


@dataclass
class Plan:
    trials: list            # the whole grid, in order
    state: State
    pending: list           # trials to run now

    @property
    def done(self) -> int:
        return sum(t.key in self.state.ok for t in self.trials)

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.key in self.state.failed]


def plan(exp, store: Store, retry_failed: bool = False, exclude=()) -> Plan:
    """`exclude`: keys not to run now (trials a queued or running cluster job will run)."""
    trials = list(exp.trials())
    state = store.state()
    skip = state.ok.keys() | (set() if retry_failed else state.failed.keys()) | set(exclude)
    return Plan(trials, state, [t for t in trials if t.key not in skip])


class FailFast(Exception):
    pass


class Reporter:
    """Progress bar (done/total, rate, ETA) and failures printed the moment they happen."""

    def __init__(self, total: int, done_before: int, fail_fast: bool, enabled: bool):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done_before, unit="trial", disable=not enabled,
                        dynamic_ncols=True, smoothing=0.05, mininterval=0.5)
        self.fail_fast, self.ok, self.failed = fail_fast, 0, []

    def __call__(self, s: Summary) -> None:
        self.bar.update(1)
        if s.status == "ok":
            self.ok += 1
            return
        self.failed.append(s)
        self.bar.write(f"trial {s.index} ({s.key}) failed: {s.error}")
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
                print("waiting for the workers of an interrupted run to finish their trial...", file=sys.stderr)
                fcntl.flock(w, fcntl.LOCK_EX)
            fcntl.flock(w, fcntl.LOCK_UN)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def run(exp, opts: RunOptions) -> int:
    """Run every pending trial of `exp`; return the exit status (0 all done, 1 failures)."""
    if exp.plot_only:
        print(f"{exp.name}: no trials (a plot-only experiment file): `python plot.py --name {exp.name}` draws it")
        return 0
    datasets.require(exp.datasets())
    store = Store(exp.name)
    with RunLock(store):
        flying = backends.in_flight(store)     # submitted with --no-wait and still in the queue
        p = plan(exp, store, opts.retry_failed, exclude=flying)
        skipped_failed = 0 if opts.retry_failed else len(p.failed)
        print(f"{exp.name}: {len(p.trials)} trials, {p.done} done, {len(p.pending)} to run"
              + (f", {skipped_failed} failed before (rerun them with --retry-failed)" if skipped_failed else "")
              + (f", {len(flying)} queued or running ({backends.describe(flying)})" if flying else "")
              + f" [backend {opts.backend}, tasks {opts.tasks}]", flush=True)
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
        finally:
            rep.close()
        return finish(exp, store, p.trials, rep, time.perf_counter() - t0, interrupted)


def finish(exp, store, trials, rep, seconds, interrupted) -> int:
    state = store.state()
    rows, csv = store.merge(trials, state)
    failed = [t for t in trials if t.key in state.failed]
    missing = len(trials) - rows - len(failed)
    if rep.ok or rep.failed:
        print(f"ran {rep.ok + len(rep.failed)} trials in {seconds:.1f} s: {rep.ok} ok, {len(rep.failed)} failed")
    if csv:
        print(f"wrote {csv} ({rows} rows)" + (f" and {store.series_path}" if store.series_path.exists() else ""))
    if interrupted:
        print(f"{interrupted}; {missing} trials not run yet: run the same command again to resume")
    if failed:
        print(f"{len(failed)} failed trials:")
        for t in failed[:20]:
            err = state.failed[t.key]["error"]
            print(f"  _index {t.index} key {t.key} {t.params}: {err['type']}: {err['message']}")
        if len(failed) > 20:
            print(f"  ... and {len(failed) - 20} more (python run.py --name {exp.name} --status)")
        print(f"tracebacks are in {store.records_dir}; rerun them with --retry-failed")
    return 1 if failed or interrupted else 0


def status(exp) -> int:
    if exp.plot_only:
        return run(exp, RunOptions())
    store = Store(exp.name)
    p = plan(exp, store)
    failed = p.failed
    print(f"{exp.name}: {len(p.trials)} trials: {p.done} done, {len(failed)} failed, "
          f"{len(p.trials) - p.done - len(failed)} pending")
    stale = len(p.state.ok.keys() - {t.key for t in p.trials})
    if stale:
        print(f"({stale} finished trials are no longer in the grid: kept in {store.records_dir}, left out of the CSV)")
    for t in failed[:20]:
        err = p.state.failed[t.key]["error"]
        print(f"  failed: _index {t.index} {t.params}: {err['type']}: {err['message']}")
    return 0


def dry_run(exp, show: int = 5) -> int:
    if exp.plot_only:
        return run(exp, RunOptions())
    n = len(exp)
    print(f"{exp.path}: trial '{exp.trial_name}', {n} trials")
    for t in exp.trials():
        if t.index >= show:
            break
        print(f"  [{t.index}] {t.params}")
    if n > show:
        print(f"  ... ({n - show} more)")
    names = sorted(exp.datasets())
    for name in names:
        print(f"  dataset {name}: {datasets.status(name)}")
    missing = [n for n in names if datasets.status(n) == "missing"]
    if missing:
        print(f"  fetch the missing datasets first: {datasets.make_command(missing)}")
    store = Store(exp.name)
    p = plan(exp, store)
    print(f"  {p.done} done, {len(p.failed)} failed, {len(p.pending)} to run")
    return 0


def collect(exp, opts: RunOptions) -> int:
    """Merge whatever records have arrived (e.g. from a --no-wait cluster run) into the CSV."""
    store = Store(exp.name)
    flying = backends.in_flight(store)
    p = plan(exp, store)
    rows, csv = store.merge(p.trials, p.state)
    print(f"{exp.name}: {p.done} of {len(p.trials)} trials done, {len(p.failed)} failed"
          + (f"; wrote {csv} ({rows} rows)" if csv else ""))
    backends.report_jobs(store, flying)
    return 0 if p.done == len(p.trials) else 1
