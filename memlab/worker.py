"""Run trials inside a worker process: the one place a trial function is called.

Every backend ends here.  A worker is a child process started by memlab.pool (for a local
run, and inside each cluster array task) as

    python -m memlab.worker FD

talking to its supervisor over the socket FD: it receives a Job, imports the trial module
once, keeps datasets cached (memlab.datasets), and for each Trial it is sent runs it, writes
the record to a file of its own and answers with a Summary.  Whatever the trial does to this
process (a segfault, an OOM kill, os._exit, a hang past its time limit) the supervisor sees
the process die and records the trial's failure itself; nothing else is lost.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from memlab import trials as trial_registry
from memlab.params import Trial
from memlab.store import RecordWriter, RecordWriteError, Store, Summary, provenance


@dataclass(frozen=True)
class Job:
    """What a worker needs to run trials of one experiment (picklable, small)."""
    name: str
    trial: str            # trial module name as written in the experiment file
    results_dir: str
    tag: str              # names the worker's record file: "local", "sge-123-4", ...
    cwd: str              # where the user's own trial modules live
    watch_parent: bool = True    # exit when the process that started this worker is gone
    run_id: str = ""             # a new record file for every run, even in a long-lived process
    hold_lock: bool = False      # local runs: hold results/NAME/workers.lock (a rerun waits for orphans)


@dataclass
class Loaded:
    fn: object
    store: Store
    writer: RecordWriter
    code: str
    trial_id: str
    prov: dict
    dataset_keys: tuple = ("dataset",)


_state: dict = {}         # per process: loaded jobs, the parent pid, the workers' lock


def setup(job: Job) -> Loaded:
    key = (job.name, job.results_dir, job.tag, job.run_id)
    if key not in _state:
        module = trial_registry.load(job.trial, job.cwd)
        store = Store(job.name, Path(job.results_dir))
        # Long trials may checkpoint per epoch here (opt-in; see memlab.trials.sgd), keyed by `_key`.
        os.environ["MEMLAB_CHECKPOINT_DIR"] = str(store.dir / "checkpoints")
        os.environ["MEMLAB_TRIAL_CODE"] = trial_registry.fingerprint(module)   # a checkpoint of other code is not resumed
        if job.watch_parent and "parent" not in _state:
            _watch_parent()
        if job.hold_lock and "workers_lock" not in _state:
            _hold_workers_lock(store)
        _state[key] = Loaded(module.trial, store, RecordWriter(store.records_dir, job.tag),
                             trial_registry.fingerprint(module), trial_registry.trial_id(job.trial),
                             provenance(getattr(module, "__file__", None)),
                             tuple(getattr(module, "DATASET_KEYS", ("dataset",))))
    return _state[key]


def _watch_parent() -> None:
    """Exit when the process that started this worker is gone (killed with -9, say).

    An orphaned worker would otherwise sit idle holding the workers' lock, or finish trials a
    rerun has already started again.  Its records are flushed per trial, so nothing is lost.
    """
    parent = _state["parent"] = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="memlab-parent-watch").start()


def _hold_workers_lock(store: Store) -> None:
    """A shared lock held for the worker's life: a new run waits until orphans are gone."""
    store.dir.mkdir(parents=True, exist_ok=True)
    f = open(store.dir / "workers.lock", "a")
    fcntl.flock(f, fcntl.LOCK_SH)
    _state["workers_lock"] = f


def run_one(job: Job, trial: Trial) -> Summary:
    """Run one trial in this process and record it (RecordWriteError if the record cannot be written)."""
    w = setup(job)
    started, t0 = time.time(), time.perf_counter()
    try:
        outcome = w.fn(trial.call_params())
    except BaseException as e:       # SystemExit, KeyboardInterrupt raised by the trial: its failure
        outcome = e
        if isinstance(e, SystemExit):
            outcome = SystemExitError(f"the trial called sys.exit({e.code!r})")
    return w.store.record(w.writer, trial, outcome, time.perf_counter() - t0, started, w.code, w.trial_id, w.prov,
                          data=data_used(w.dataset_keys, trial.params))


def data_used(keys, params: dict) -> dict:
    """{dataset name: fingerprint} of the dataset files the trial's parameters name (read after
    it ran: it may have built one on demand); a later change of a file makes its results stale."""
    names = [params[k] for k in keys if isinstance(params.get(k), str)]
    if not names:
        return {}
    from memlab.datasets import fingerprint
    return {n: fp for n in names if (fp := fingerprint(n)) is not None}


class SystemExitError(Exception):
    """A trial called sys.exit()."""


def prepare(job: Job) -> None:
    """Call the trial module's optional `prepare()` once per process, before the worker says
    ready: what every trial needs loaded or compiled (numba kernels, a framework) is then in no
    trial's time, nor in its time limit or slow-trial clock.  An error here is left to the
    trials to report."""
    hook = getattr(sys.modules.get(trial_registry.module_name(job.trial)), "prepare", None)
    if callable(hook):
        try:
            hook()
        except Exception:
            pass


def serve(conn: Connection) -> int:
    """The worker's loop: a Job, then trials until told to stop or the supervisor is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the supervisor's to handle
    try:
        job = conn.recv()
        w = setup(job)
    except BaseException as e:      # the trial module does not import: the run cannot go on
        import traceback
        conn.send(("fatal", f"the worker could not load trial '{getattr(job, 'trial', '?')}': "
                            f"{type(e).__name__}: {e}", "".join(traceback.format_exception(e))))
        return 1
    prepare(job)
    conn.send(("ready", w.code))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return 0
        if msg[0] == "stop":
            return 0
        try:
            conn.send(("done", run_one(job, msg[1])))
        except RecordWriteError as e:
            conn.send(("write_error", str(e.filename), e.strerror, msg[1].key))
            return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m memlab.worker FD (started by memlab.pool)", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[0]))
    conn = Connection(sock.detach())
    try:
        return serve(conn)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    from memlab.worker import main as _main   # run as the module proper, not a __main__ copy of it
    os._exit(_main())   # no interpreter teardown: a trial's threads (torch, jax) cannot hang the exit
