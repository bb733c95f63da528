"""Supervised worker processes: a trial may kill its own process; the run goes on.

    pool = Pool(job, n_workers=2, timeout=7200)
    pool.run(trials, report)        # report(summary) per finished (or failed) trial

Each worker is a long-lived child (`python -m memlab.worker FD`, see memlab.worker) that runs
one trial at a time, so starting a process is paid once per worker, not per trial.  The
supervisor (this process) hands out trials and watches its workers:

- a worker that dies while running a trial (segfault, SIGKILL from the out-of-memory killer,
  os._exit) has that trial recorded as failed, with the signal or exit status, and is replaced;
- a trial past its time limit has its worker's process group killed, is recorded as
  "timed out after 2h", and the worker is replaced;
- a trial running far longer than the others is named on screen (`note`);
- a failure to write a record (disk full) stops the run with the path: nothing finished is lost.

Used by the local backend and by every cluster array task (memlab.task).
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from memlab import trials as trial_registry
from memlab.params import Trial
from memlab.store import RecordWriter, RecordWriteError, Store, Summary
from memlab.units import human

REPO = Path(__file__).resolve().parent.parent       # the folder holding memlab/: on the workers' path
SLOW_AFTER_S = 60.0       # a trial is named as slow only after this long...
SLOW_FACTOR = 10.0        # ...and when it has run this many times the median finished trial
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class WorkerStartError(Exception):
    """A worker could not start (its trial module does not import, say): the run cannot go on."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe_exit(rc: int) -> tuple[str, str]:
    """How a worker process ended, for people: (the signal's name or the exit status, a likely cause)."""
    if rc < 0:
        try:
            sig = signal.Signals(-rc)
        except ValueError:
            return f"was killed by signal {-rc}", ""
        why = {signal.SIGKILL: "the out-of-memory killer, a scheduler's limit, or kill -9",
               signal.SIGSEGV: "a crash in native code", signal.SIGBUS: "a crash in native code",
               signal.SIGABRT: "an abort in native code"}.get(sig, "")
        return f"was killed by signal {sig.name} ({signal.strsignal(sig)})", why
    return f"exited with status {rc}", "os._exit() or a crash in native code"


@dataclass
class _Worker:
    proc: subprocess.Popen
    conn: Connection
    ready: bool = False
    trial: Trial | None = None
    t0: float = 0.0          # monotonic start of the current trial
    started: float = 0.0     # wall-clock start of the current trial
    noted: float = 0.0       # elapsed seconds at which it was last named as slow
    dead: bool = False


@dataclass
class Pool:
    job: object                          # memlab.worker.Job
    n_workers: int = 1
    timeout: float | None = None         # seconds a trial may run
    threads: int | None = None           # CPU threads per worker (default: cores // workers)
    note: object = print                 # where slow-trial notices go
    slow_after: float = field(default_factory=lambda: float(os.environ.get("MEMLAB_SLOW_AFTER", SLOW_AFTER_S)))

    def __post_init__(self):
        self.workers: list[_Worker] = []
        self.code = ""
        self.durations: list[float] = []
        self._writer = None
        self._store = Store(self.job.name, Path(self.job.results_dir))

    # ---------------------------------------------------------------- processes ---
    def _env(self) -> dict:
        env = dict(os.environ)
        threads = self.threads or max(1, cpu_count() // self.n_workers)
        env.setdefault("MEMLAB_THREADS", str(threads))
        for var in THREAD_VARS:
            env.setdefault(var, env["MEMLAB_THREADS"])
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        return env

    def _start(self) -> _Worker:
        mine, theirs = socket.socketpair()
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        proc = subprocess.Popen([sys.executable, "-m", "memlab.worker", str(theirs.fileno())],
                                pass_fds=[theirs.fileno()], env=self._env(), stdin=subprocess.DEVNULL,
                                cwd=self.job.cwd, **group)
        theirs.close()
        w = _Worker(proc, Connection(mine.detach()))
        w.conn.send(self.job)
        self.workers.append(w)
        return w

    def _kill(self, w: _Worker) -> None:
        """Kill the worker and everything it started (its own process group)."""
        for kill in (lambda: os.killpg(w.proc.pid, signal.SIGKILL), w.proc.kill):
            try:
                kill()
                break
            except (ProcessLookupError, PermissionError, OSError):
                continue
        w.proc.wait()
        self._drop(w)

    def _drop(self, w: _Worker) -> None:
        w.dead = True
        w.conn.close()
        if w in self.workers:
            self.workers.remove(w)

    def close(self, kill: bool = False) -> None:
        """Stop every worker: politely when idle, by force when `kill` (Ctrl-C) or stuck."""
        for w in list(self.workers):
            if kill or w.trial is not None:
                self._kill(w)
                continue
            try:
                w.conn.send(("stop",))
                w.proc.wait(timeout=10)
                self._drop(w)
            except (OSError, subprocess.TimeoutExpired):
                self._kill(w)

    # ---------------------------------------------------------------- recording ---
    def _record_failure(self, w: _Worker, kind: str, message: str) -> Summary:
        """The supervisor writes the record of a trial whose worker could not (it died)."""
        if self._writer is None:
            self._writer = RecordWriter(self._store.records_dir, self.job.tag)
        outcome = {"__memlab_error__": True, "type": kind, "message": message}
        return self._store.record(self._writer, w.trial, outcome, time.monotonic() - w.t0, w.started,
                                  self.code, trial_registry.trial_id(self.job.trial))

    # ---------------------------------------------------------------- the loop ---
    def run(self, trials, report) -> None:
        """Run every trial; call report(summary) as each one ends (ok or failed).

        An exception from `report` (--fail-fast's stop) ends the dispatch: the trials still
        running finish and are reported, then it is raised.  Ctrl-C kills the workers at once
        (their trials stay pending).
        """
        queue = list(trials)[::-1]
        stop = None

        def deliver(summary):
            nonlocal stop
            self.durations.append(summary.seconds)
            try:
                report(summary)
            except Exception as e:        # fail-fast: no more trials; in-flight ones still finish
                stop = stop or e

        try:
            while True:
                busy = [w for w in self.workers if w.trial is not None]
                need = len(busy) + (min(self.n_workers - len(busy), len(queue)) if stop is None else 0)
                while len(self.workers) < need:
                    self._start()              # the first workers, or one for a worker that died
                for w in self.workers:
                    if w.ready and w.trial is None and queue and stop is None:
                        w.trial, w.t0, w.started, w.noted = queue.pop(), time.monotonic(), time.time(), 0.0
                        w.conn.send(("trial", w.trial))
                busy = [w for w in self.workers if w.trial is not None]
                if not busy and (not queue or stop is not None):
                    break
                for conn in wait([w.conn for w in self.workers], timeout=self._tick(busy)):
                    w = next((x for x in self.workers if x.conn is conn), None)
                    if w is not None:
                        self._receive(w, deliver)
                for w in [x for x in self.workers if x.proc.poll() is not None]:
                    self._died(w, deliver)     # died without its socket closing (a forked grandchild)
                self._check_clock(deliver)
        except BaseException:
            self.close(kill=True)
            raise
        self.close()
        if stop is not None:
            raise stop

    def _tick(self, busy) -> float:
        """How long to wait for a message: until the next time limit, at most 1 s."""
        now = time.monotonic()
        waits = [1.0]
        if self.timeout:
            waits += [w.t0 + self.timeout - now for w in busy]
        return max(0.0, min(waits))

    def _receive(self, w: _Worker, deliver) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            self._died(w, deliver)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready, self.code = True, msg[1]
        elif kind == "done":
            w.trial = None
            deliver(msg[1])
        elif kind == "fatal":
            self._kill(w)
            raise WorkerStartError(f"{msg[1]}\n{msg[2]}")
        elif kind == "write_error":
            self._kill(w)
            raise RecordWriteError(0, msg[2], msg[1])

    def _died(self, w: _Worker, deliver) -> None:
        try:
            while w.trial is not None and w.conn.poll():   # what it said before it went
                msg = w.conn.recv()
                if msg[0] == "done":
                    w.trial = None
                    deliver(msg[1])
        except (EOFError, OSError):
            pass
        rc = w.proc.wait()
        self._drop(w)
        how, why = describe_exit(rc)
        if not w.ready:
            raise WorkerStartError(f"a worker process {how} while loading trial '{self.job.trial}' "
                                   "(see the messages above)")
        if w.trial is not None:
            deliver(self._record_failure(w, "WorkerDied", f"the worker process {how} while running this trial"
                                         + (f" ({why})" if why else "")))

    def _check_clock(self, deliver) -> None:
        now = time.monotonic()
        for w in [x for x in self.workers if x.trial is not None]:
            elapsed = now - w.t0
            if self.timeout and elapsed >= self.timeout:
                self._kill(w)
                deliver(self._record_failure(w, "Timeout", f"timed out after {human(self.timeout)}"))
                continue
            threshold = self.slow_after
            if self.durations:
                threshold = max(threshold, SLOW_FACTOR * statistics.median(self.durations))
            if elapsed >= max(threshold, 2 * w.noted):
                w.noted = elapsed
                median = f"; the median trial took {human(statistics.median(self.durations))}" if self.durations else ""
                self.note(f"still running: trial _index {w.trial.index} (key {w.trial.key}) for {human(elapsed)}"
                          + median)
