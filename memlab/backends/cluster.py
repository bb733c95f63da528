"""What the SGE and SLURM backends share: manifest, balancing, submission, waiting, reports.

    python run.py --name mnist --backend sge --tasks 20 -- -q all.q -l gpu=1
    python run.py --name mnist --backend slurm --tasks 20 --no-wait     # then: --collect

One run is one array job.  The pending trials are dealt into N shares and frozen in a
manifest (results/NAME/manifests/STAMP.json) before submission, so editing the experiment
file while the job runs changes nothing; array task i runs share i through
`python -m memlab.task MANIFEST i` (memlab/task.py), writing its own record file
(results/NAME/records/sge-JOB-i-*.jsonl).  After submission we poll those records (progress)
and the scheduler's queue (is the job still there?) until the job has left the queue: never
`qsub -sync y` / `sbatch --wait`, whose exit status lies (a deleted job returns 0) and which
can hang.  What a task did is judged from its records alone; a task whose trials have no
record died, and is reported with its task id, log and missing trials.

A scheduler module (sge.py, slurm.py) supplies: NAME, SCRIPT, LOG, array_limit(),
command(...), parse_job_id(out), tasks(job), stuck(job, tasks), cancel(job), accounting(job, task).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from memlab import io
from memlab.backends import Incomplete, describe
from memlab.params import Trial
from memlab.errors import ConfigError, UserError
from memlab.log import log
from memlab.store import Store, Summary
from memlab.units import format_mem, hms, parse_mem, parse_time  # noqa: F401  (used by sge.py/slurm.py)

REPO = Path(__file__).resolve().parent.parent.parent   # the folder holding memlab/ (a clone, or site-packages)
JOBS = Path(__file__).resolve().parent / "jobs"        # sge.sh, slurm.sh: package data (the clone's top-level links)
SCHEDULERS = {"sge": "memlab.backends.sge", "slurm": "memlab.backends.slurm"}

POLL_MIN_S = 0.5          # poll records and queue this often at first...
POLL_MAX_S = 5.0          # ...slowing down to this for long runs
UNREACHABLE_S = 300.0     # give up waiting when the scheduler has not answered for this long
GRACE_S = 3.0             # after a job leaves the queue, wait this long for late records (NFS)
COMMAND_TIMEOUT_S = 60    # bound on every scheduler command


class SchedulerError(UserError):
    """A scheduler command failed or is missing."""
    missing = False


def scheduler(name: str):
    return importlib.import_module(SCHEDULERS[name])


def sh(cmd: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a scheduler command, bounded; a missing command or a timeout is a SchedulerError."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        err = SchedulerError(f"'{cmd[0]}' not found: is this a submit host of the cluster?",
                             fix="run on a login node, or start a local cluster: "
                                 "sudo bash scripts/cluster/setup_sge.sh (or setup_slurm.sh)")
        err.missing = True
        raise err from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"'{shlex.join(cmd)}' did not answer within {timeout:.0f} s") from None


# ---------------------------------------------------------------- resources ---
def resources(exp, opts) -> dict:
    """The experiment file's `resources`, overridden by the command line's flags; validated."""
    res = dict(exp.resources)
    if "cpus" in res:
        cpus = res.pop("cpus")
        if res.get("slots", cpus) != cpus:
            raise ConfigError(f"'slots' ({res['slots']}) and 'cpus' ({cpus}) disagree", file=exp.path,
                              key="resources", fix="keep one of them: they name the same thing")
        res["slots"] = cpus
    res.update(opts.resources)
    for k in ("gpus", "slots"):
        if k in res and (not isinstance(res[k], int) or isinstance(res[k], bool) or res[k] < 0):
            raise ConfigError(f"'{k}' must be a whole number >= 0, got {res[k]!r}", file=exp.path,
                              key=f"resources.{k}", fix=f'e.g. "{k}": 1')
    if "mem" in res:
        res["mem_mb"] = parse_mem(res["mem"], exp.path)
    if "time" in res:
        res["time_s"] = parse_time(res["time"], exp.path)
    return res


# ---------------------------------------------------------------- sharing ---
def n_tasks(requested: int, n_pending: int, limit: int) -> int:
    """--tasks N clamped to the pending trials and the scheduler's array limit; -1 = one per trial."""
    n = n_pending if requested == -1 else min(requested, n_pending)
    return max(1, min(n, limit))


def deal(trials: list[Trial], n: int, seed: int = 0) -> list[list[Trial]]:
    """Split trials into n shares of equal size (±1), cheap and costly ones mixed.

    Grids list trials in order (costs often grow along a parameter), so a task must not get
    one contiguous block; and round-robin alone can still line up with a parameter whose
    number of values is a multiple of n.  A seeded shuffle dealt round-robin avoids both;
    each share then runs in grid order.
    """
    order = list(trials)
    random.Random(seed).shuffle(order)
    return [sorted(order[i::n], key=lambda t: t.index) for i in range(n)]


# ---------------------------------------------------------------- manifest ---
def write_manifest(store: Store, exp, backend: str, shares: list[list[Trial]], res: dict,
                   timeout: float | None = None) -> Path:
    """Freeze what every task will run; written atomically before submission."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    path = store.dir / "manifests" / f"{stamp}.json"
    manifest = {
        "version": 1, "name": exp.name, "backend": backend, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "created_ts": time.time(),
        "experiment": str(Path(exp.path).resolve()), "trial": exp.trial_name,
        "cwd": os.getcwd(), "results_dir": str(store.base.resolve()), "python": sys.executable,
        "env": {k: os.environ[k] for k in ("MEMLAB_ROOT", "MEMLAB_FSYNC") if k in os.environ},
        "resources": res,
        "timeout": timeout,             # seconds a trial may run inside a task (None: no limit)
        "tasks": [[{"index": t.index, "key": t.key, "params": t.params, "seed": t.seed} for t in share]
                  for share in shares],
    }
    io.write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(path) -> dict:
    return json.loads(Path(path).read_text())


def share(manifest: dict, task: int) -> list[Trial]:
    """The trials of array task `task` (1-based)."""
    return [Trial(t["index"], t["key"], t["params"], t.get("seed", 0)) for t in manifest["tasks"][task - 1]]


@dataclasses.dataclass
class Submission:
    """One submitted array job: results/NAME/manifests/STAMP.job.json beside its manifest."""
    backend: str
    job_id: str
    manifest: str
    n_tasks: int
    submitted: str
    command: list = dataclasses.field(default_factory=list)
    ended: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.manifest).with_suffix(".job.json")

    @property
    def record_prefix(self) -> str:
        return f"{self.backend}-{self.job_id}-"

    @property
    def sched(self):
        return scheduler(self.backend)

    def save(self) -> None:
        io.write_text(self.path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")

    def shares(self) -> dict[int, list[Trial]]:
        """Task id -> its trials, from the manifest (read once)."""
        if "_shares" not in self.__dict__:
            m = load_manifest(self.manifest)
            self.__dict__["_shares"] = {i: share(m, i) for i in range(1, len(m["tasks"]) + 1)}
        return self.__dict__["_shares"]

    def log(self, logs_dir: Path, task: int) -> Path:
        return logs_dir / self.sched.LOG.format(job=self.job_id, task=task)

    def __str__(self) -> str:
        return f"{self.backend} job {self.job_id}"


def submissions(store: Store) -> list[Submission]:
    subs = []
    for p in sorted((store.dir / "manifests").glob("*.job.json")):
        try:
            subs.append(Submission(**json.loads(p.read_text())))
        except (ValueError, TypeError) as e:
            log.warning(f"warning: ignoring unreadable {p}: {e}", extra={"stderr": True})
    return subs


def submit(sched, exp, pending: list[Trial], store: Store, opts) -> Submission:
    """Write the manifest, create the log folder, submit one array job; return it."""
    res = resources(exp, opts)
    limit = sched.array_limit()
    n = n_tasks(opts.tasks, len(pending), limit)
    if opts.tasks > n or (opts.tasks == -1 and n < len(pending)):
        why = f"the array limit is {limit}" if n == limit and n < len(pending) else f"{len(pending)} trials to run"
        log.info(f"using {n} array tasks ({why})")
    manifest = write_manifest(store, exp, sched.NAME, deal(pending, n), res, getattr(opts, "timeout", None))
    logs = store.dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)   # a missing -o folder makes SGE hang the job
    cmd = sched.command(script=JOBS / sched.SCRIPT, python=sys.executable, repo=REPO, manifest=manifest.resolve(),
                        cwd=Path.cwd(), logs=logs.resolve(), name=job_name(exp.name), n_tasks=n, res=res,
                        extra=opts.scheduler_args)
    out = sh(cmd)
    if out.returncode != 0:
        manifest.unlink()
        raise SchedulerError(f"{cmd[0]} refused the job (exit status {out.returncode}): "
                             f"{(out.stderr or out.stdout).strip()}\n  command: {shlex.join(cmd)}",
                             fix="check the resources and the arguments after `--`")
    sub = Submission(sched.NAME, sched.parse_job_id(out.stdout), str(manifest), n,
                     time.strftime("%Y-%m-%d %H:%M:%S"), cmd)
    sub.save()
    log.info(f"submitted {sub}: {n} tasks, {len(pending)} trials; logs in {logs}/")
    return sub


def job_name(name: str) -> str:
    """A job name every scheduler accepts (SGE forbids / : @ \\ * ? and a leading digit)."""
    return "memlab-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]


# ---------------------------------------------------------------- records ---
class RecordTail:
    """Reads the records that appear in files with the given name prefixes, a line at a time.

    Only whole lines count: a line still being written (or torn by a killed writer) waits.
    """

    def __init__(self, records_dir: Path, prefixes):
        self.dir, self.prefixes, self.offsets = Path(records_dir), tuple(prefixes), {}

    def read(self):
        if not self.dir.exists():
            return
        for path in sorted(self.dir.iterdir()):
            if not path.name.startswith(self.prefixes) or not path.name.endswith(".jsonl"):
                continue
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path.name, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.offsets[path.name] = self.offsets.get(path.name, 0) + end
            for line in data[:end].splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue   # corrupt line: Store.records() warns about it when merging


def summary(rec: dict) -> Summary:
    err = rec.get("error")
    return Summary(rec["key"], rec.get("_index", -1), rec.get("status", "error"), rec.get("seconds", 0.0),
                   f"{err['type']}: {err['message']}" if err else None)


def recorded_keys(store: Store) -> set:
    state = store.state()
    return state.ok.keys() | state.failed.keys()


# ---------------------------------------------------------------- in flight ---
def in_flight(store: Store) -> dict[str, Submission]:
    """Trials (key -> job) that a queued or running array task of this experiment will run.

    Asks the scheduler about every job not yet seen to end; a job gone from the queue is
    marked ended.  A scheduler that cannot be asked is warned about and its jobs ignored.
    """
    flying, done = {}, None
    for sub in submissions(store):
        if sub.ended:
            continue
        try:
            tasks = sub.sched.tasks(sub.job_id)
        except SchedulerError as e:
            log.warning(f"warning: cannot ask about {sub} ({e}); treating its trials as not running",
                        extra={"stderr": True})
            continue
        if tasks is None:
            log.warning(f"warning: {sub.backend} did not answer about job {sub.job_id}; "
                        "treating its trials as not running", extra={"stderr": True})
            continue
        if not tasks:
            sub.ended = time.strftime("%Y-%m-%d %H:%M:%S")
            sub.save()
            continue
        done = recorded_keys(store) if done is None else done
        for task, trials in sub.shares().items():
            if task in tasks:
                flying.update((t.key, sub) for t in trials if t.key not in done)
    return flying


# ---------------------------------------------------------------- waiting ---
def run(sched, exp, pending: list[Trial], store: Store, opts, report) -> None:
    """The backend: submit the pending trials as one array job, then wait unless --no-wait.

    Jobs submitted earlier with --no-wait that are still in the queue are waited for too, so
    running the same command again picks their results up.
    """
    jobs = [s for s in submissions(store) if not s.ended and s.backend == sched.NAME]
    if pending:
        jobs.append(submit(sched, exp, pending, store, opts))
    if not opts.wait:
        if pending:
            log.info(f"not waiting (--no-wait): `python run.py --name {exp.name} --collect` merges what has "
                     f"finished; `{jobs[-1].sched.CANCEL} {jobs[-1].job_id}` cancels")
        return
    wait(jobs, store, report, opts.progress)


def wait(jobs: list[Submission], store: Store, report, progress: bool = True) -> None:
    """Report each trial as its record arrives until every job has left the queue (bounded)."""
    done = recorded_keys(store)
    expected = {t.key for sub in jobs for share_ in sub.shares().values() for t in share_} - done
    tail = RecordTail(store.records_dir, [s.record_prefix for s in jobs])
    reported: set = set()

    def drain():
        for rec in tail.read():
            if rec.get("key") in expected and rec["key"] not in reported:
                reported.add(rec["key"])
                report(summary(rec))

    active, stuck_jobs, t0 = list(jobs), [], time.monotonic()
    last_answer = {s.job_id: t0 for s in jobs}
    shown = ["", 0.0]          # the last status line printed, and when
    try:
        while active:
            drain()
            counts = {}
            for sub in list(active):
                tasks = _ask(sub, last_answer)
                if tasks is None:
                    continue
                if not tasks:
                    active.remove(sub)
                    _finish_job(sub, expected, reported, drain)
                    continue
                stuck = sub.sched.stuck(sub.job_id, tasks)
                if stuck and len(stuck) == len(tasks):     # nothing left that could still run
                    active.remove(sub)
                    stuck_jobs.append((sub, stuck))
                for state in tasks.values():
                    counts[state] = counts.get(state, 0) + 1
            if not progress:
                _status_line(counts, len(reported), len(expected), shown)
            if active:
                time.sleep(min(POLL_MAX_S, POLL_MIN_S + (time.monotonic() - t0) / 60))
        drain()
    except (KeyboardInterrupt, Incomplete):
        for sub in active:
            log.warning(f"{sub} is still in the queue and goes on without us: "
                        f"`{sub.sched.CANCEL} {sub.job_id}` cancels it, --collect merges its results",
                        extra={"stderr": True})
        raise
    except Exception:           # e.g. --fail-fast's stop at a failed trial: stop the jobs too
        for sub in active:
            with contextlib.suppress(SchedulerError):
                sub.sched.cancel(sub.job_id)
                log.warning(f"cancelled {sub}", extra={"stderr": True})
        raise
    if expected - reported or stuck_jobs:
        _report_end(jobs, stuck_jobs, store)


def _ask(sub: Submission, last_answer: dict) -> dict | None:
    """The job's tasks in the queue, or None while the scheduler does not answer (for a while)."""
    try:
        tasks = sub.sched.tasks(sub.job_id)
    except SchedulerError as e:
        if e.missing:
            raise Incomplete(str(e)) from None
        tasks = None
    if tasks is None:
        if time.monotonic() - last_answer[sub.job_id] > UNREACHABLE_S:
            raise Incomplete(f"{sub.backend} has not answered about job {sub.job_id} for {UNREACHABLE_S:.0f} s; "
                             "it may still be running: collect its results later with --collect")
        return None
    last_answer[sub.job_id] = time.monotonic()
    return tasks


def _status_line(counts: dict, n_reported: int, n_expected: int, shown: list) -> None:
    """Without a progress bar (a log file): the tasks' states when they change, at most every 10 s."""
    line = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if line and line != shown[0] and time.monotonic() - shown[1] > 10:
        log.info(f"tasks: {line}; {n_reported}/{n_expected} trials recorded")
        shown[:] = [line, time.monotonic()]


def _finish_job(sub: Submission, expected: set, reported: set, drain) -> None:
    """The job left the queue: give late records (a shared file system) a moment, mark it ended."""
    mine = {t.key for s in sub.shares().values() for t in s} & expected
    deadline = time.monotonic() + GRACE_S
    drain()
    while mine - reported and time.monotonic() < deadline:
        time.sleep(0.5)
        drain()
    sub.ended = time.strftime("%Y-%m-%d %H:%M:%S")
    sub.save()


def _report_end(jobs: list[Submission], stuck_jobs: list, store: Store) -> None:
    """Print the dead tasks and the stuck jobs; raise Incomplete saying how many."""
    done = recorded_keys(store)
    stuck_ids = {sub.job_id for sub, _ in stuck_jobs}
    died, problems = 0, []
    for sub in jobs:
        if sub.job_id not in stuck_ids:
            n, lines = task_problems(sub, store, done)
            died, problems = died + n, problems + lines
    for sub, stuck in stuck_jobs:
        problems.append(f"{sub}: tasks stuck in the queue, not waiting for them: "
                        + "; ".join(f"task {t}: {why}" for t, why in sorted(stuck.items())))
        problems.append(f"  {sub.sched.STUCK_FIX.format(job=sub.job_id)}")
    if problems:
        log.info("\n".join(problems))
        raise Incomplete(", ".join(([f"{died} array task(s) died"] if died else [])
                                   + ([f"{len(stuck_jobs)} job(s) stuck in the queue"] if stuck_jobs else [])))


def task_problems(sub: Submission, store: Store, done: set, running=(), show: int = 20) -> tuple[int, list[str]]:
    """Two lines per task of an ended job with trials neither `done` nor `running`: it died.

    Returns the number of dead tasks and the lines; only the first `show` tasks are looked into
    (the scheduler's accounting can be slow to ask).
    """
    lines, dead = [], 0
    for task, trials in sub.shares().items():
        missing = [t for t in trials if t.key not in done and t.key not in running]
        if not missing:
            continue
        dead += 1
        if dead > show:
            continue
        log = sub.log(store.dir / "logs", task)
        lines.append(f"{sub} task {task} died ({exit_reason(sub, task, log)}) without finishing "
                     f"{len(missing)} of its {len(trials)} trials: _index "
                     + ", ".join(str(t.index) for t in missing[:20]) + (" ..." if len(missing) > 20 else ""))
        lines.append(f"  log: {log}")
    if dead > show:
        lines.append(f"{sub}: ... and {dead - show} more tasks died (logs in {store.dir / 'logs'})")
    return dead, lines


def exit_reason(sub: Submission, task: int, log: Path) -> str:
    """The task's exit status from the last line its job script wrote, else the scheduler's accounting."""
    code = None
    if log.exists():
        m = re.findall(r"^memlab-task-exit: (\d+)$", log.read_text(errors="replace")[-4000:], re.M)
        code = int(m[-1]) if m else None
    try:
        acct = sub.sched.accounting(sub.job_id, task)
    except SchedulerError:
        acct = None
    if code is None:
        why = "no exit status in its log: killed by the scheduler (time or memory limit, qdel/scancel) " \
              "or its node was lost"
    elif code > 128 and code - 128 < signal.NSIG:
        why = f"killed by signal {code - 128} ({signal.Signals(code - 128).name})"
    else:
        why = f"exit status {code}"
    return why + (f"; {sub.backend}: {acct}" if acct else "")


def collect_report(store: Store, flying: dict[str, Submission]) -> None:
    """For --collect: what is still running, and the tasks of ended jobs that died."""
    if flying:
        log.info(f"{len(flying)} trials still queued or running ({describe(flying)}): "
                 f"--collect again later, or run the same command to wait for them")
    lines, done = [], recorded_keys(store)
    for sub in submissions(store):
        if sub.ended:
            lines += task_problems(sub, store, done, running=flying)[1]
    if lines:
        log.info("\n".join(lines))
        log.info("run the same command again to rerun their missing trials")
