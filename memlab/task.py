"""One array task of a cluster run: run this task's share of a frozen manifest.

    python -m memlab.task results/NAME/manifests/STAMP.json TASK_ID

The job scripts (sge.sh, slurm.sh) call this with the scheduler's task id.  The manifest
(written by memlab/backends/cluster.py at submission) holds every task's trials, so what a
task runs cannot change after submission.  Records go to results/NAME/records/ under the
tag BACKEND-JOB-TASK (e.g. sge-123-4), one file per task; a requeued task skips the trials
it already recorded.  Exit status 0 when every trial ran (a trial that raised is recorded
as failed: that is the trial's failure, not the task's).

GPUs: SLURM sets CUDA_VISIBLE_DEVICES from --gres.  SGE grants a consumable count, not
devices, so when the site sets nothing (no CUDA_VISIBLE_DEVICES, no SGE_HGR_<complex> from
an RSMAP complex) the task picks its GPUs itself: the node's GPUs (MEMLAB_GPU_IDS, else
nvidia-smi, else /dev/nvidiaN), least-used memory first, each claimed by an exclusive lock
(gpu-ID.lock in this user's private /tmp/memlab-gpu-locks-UID/) held for the task's life so two
of the user's tasks on a node never pick the same.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

_held_locks: list = []     # open lock files: the claim lasts as long as this process


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m memlab.task MANIFEST TASK_ID", file=sys.stderr)
        return 2
    manifest = json.loads(Path(argv[0]).read_text())
    task = int(argv[1])
    if not 1 <= task <= len(manifest["tasks"]):
        print(f"task {task} is not in the manifest (tasks 1-{len(manifest['tasks'])})", file=sys.stderr)
        return 2
    os.environ.update(manifest.get("env", {}))
    os.chdir(manifest["cwd"])
    backend = manifest["backend"]
    job_id = os.environ.get("JOB_ID") if backend == "sge" else os.environ.get("SLURM_ARRAY_JOB_ID")
    tag = f"{backend}-{job_id or 'nojob'}-{task}"
    if backend == "sge":
        res = manifest.get("resources", {})
        assign_gpus(res.get("gpus") or 0, res.get("gpu_complex", "gpu"))
    return run_share(manifest, task, tag)


def run_share(manifest: dict, task: int, tag: str) -> int:
    """Run the task's trials in a supervised worker process (memlab.pool), as a local run does:
    a trial that crashes or passes its time limit is recorded as failed and the others go on."""
    from memlab.backends.cluster import share
    from memlab.pool import Pool, WorkerStartError
    from memlab.store import RecordWriteError
    from memlab.worker import Job
    trials = share(manifest, task)
    job = Job(manifest["name"], manifest["trial"], manifest["results_dir"], tag, manifest["cwd"])
    records = Path(manifest["results_dir"]) / manifest["name"] / "records"
    done = already_recorded(records, tag, manifest.get("created_ts", 0))
    todo = [t for t in trials if t.key not in done]
    print(f"memlab: {tag} on {socket.gethostname()}: {len(trials)} trials"
          + (f", {len(done)} recorded by an earlier attempt" if done else "")
          + f"; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}", flush=True)
    t0, count = time.perf_counter(), [len(trials) - len(todo)]

    def report(s):
        count[0] += 1
        print(f"[{count[0]}/{len(trials)}] _index {s.index} {s.status} in {s.seconds:.2f} s"
              + (f": {s.error}" if s.error else ""), flush=True)
    threads = int(os.environ.get("NSLOTS") or os.environ.get("SLURM_CPUS_PER_TASK") or 1)
    try:
        Pool(job, 1, timeout=manifest.get("timeout"), threads=threads,
             note=lambda m: print(f"memlab: {m}", flush=True)).run(todo, report)
    except (WorkerStartError, RecordWriteError) as e:
        print(f"memlab: {tag} stopped: {e}", flush=True)
        return 1
    print(f"memlab: {tag} done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


def already_recorded(records: Path, tag: str, since: float) -> set:
    """Keys this task recorded in an earlier attempt (the scheduler requeued it).

    Records older than the manifest are another job's that had the same id (job ids restart
    when a cluster is reinstalled).
    """
    from memlab.store import Store
    paths = sorted(records.glob(f"{tag}-*.jsonl"))
    return {rec["key"] for rec in Store("", records.parent.parent).records(paths)
            if rec.get("started", 0) >= since}


# ---------------------------------------------------------------- GPUs on SGE ---
def assign_gpus(n: int, complex_name: str = "gpu") -> str | None:
    """Set CUDA_VISIBLE_DEVICES for n granted GPUs unless the site did; return what was set."""
    if n <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    granted = os.environ.get(f"SGE_HGR_{complex_name}")   # RSMAP complexes name the devices granted
    if granted:
        ids = re.findall(r"\d+", granted)[:n]
    else:
        ids = claim_gpus(n, node_gpus())
    if not ids:
        print(f"memlab: {n} GPU(s) granted but none found on {socket.gethostname()} "
              "(set MEMLAB_GPU_IDS, e.g. `-- -v MEMLAB_GPU_IDS=0:1`); CUDA_VISIBLE_DEVICES left unset", flush=True)
        return None
    # nvidia-smi and the SGE complex number GPUs in PCI order; CUDA's default is fastest first
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    return os.environ["CUDA_VISIBLE_DEVICES"]


def node_gpus() -> list[tuple[str, float]]:
    """(id, memory used in MiB) of this node's GPUs: MEMLAB_GPU_IDS, else nvidia-smi, else /dev/nvidiaN."""
    if os.environ.get("MEMLAB_GPU_IDS"):
        return [(i, 0.0) for i in re.findall(r"\d+", os.environ["MEMLAB_GPU_IDS"])]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
        gpus = [(a.strip(), float(b)) for a, b in (line.split(",")[:2] for line in out.stdout.splitlines()
                                                   if line.count(",") >= 1)]
        if out.returncode == 0 and gpus:
            return gpus
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return [(p.name[6:], 0.0) for p in sorted(Path("/dev").glob("nvidia[0-9]*"), key=lambda p: int(p.name[6:]))]


def gpu_lock_dir() -> str | None:
    """This user's own folder for GPU locks: $MEMLAB_GPU_LOCK_DIR, else /tmp/memlab-gpu-locks-UID.

    It must be a real folder (not a link) owned by this user and closed to others, so nobody
    else can plant a lock file, or a link in place of one.  The locks keep one user's tasks on a
    node apart; tasks of different users are kept apart by the scheduler's GPU accounting.
    None (no locking, with a warning) when the folder is not safe.
    """
    # not tempfile.gettempdir(): schedulers give each task a TMPDIR of its own, and the locks
    # only work if every task on the node looks in the same folder
    path = os.environ.get("MEMLAB_GPU_LOCK_DIR") or f"/tmp/memlab-gpu-locks-{os.getuid()}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        print(f"memlab: cannot create the GPU lock folder {path} ({e.strerror}); GPUs picked without locks",
              flush=True)
        return None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        print(f"memlab: {path} is not a private folder of this user (a link, another owner, or open to others); "
              "GPUs picked without locks: remove it, or set MEMLAB_GPU_LOCK_DIR", flush=True)
        return None
    return path


def _open_lock(folder: str, gpu: str) -> int | None:
    """Open (creating with mode 0600) the lock file of one GPU, never through a symbolic link."""
    try:
        return os.open(os.path.join(folder, f"gpu-{gpu}.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return None


def claim_gpus(n: int, gpus: list[tuple[str, float]], lock_dir: str | None = None) -> list[str]:
    """Lock n of the GPUs, least memory used first; share locked ones only if too few are free."""
    order = [g for g, _ in sorted(gpus, key=lambda g: g[1])]
    folder = lock_dir or gpu_lock_dir()
    claimed = []
    for gpu in order:
        if len(claimed) == n or folder is None:
            break
        fd = _open_lock(folder, gpu)
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held_locks.append(fd)
        claimed.append(gpu)
    if len(claimed) < n:
        extra = [g for g in order if g not in claimed][:n - len(claimed)]
        if extra and folder is not None:
            print(f"memlab: only {len(claimed)} free GPU(s); sharing {','.join(extra)} with another task", flush=True)
        claimed += extra
    return claimed


def _forget_locks_in_child() -> None:
    """A forked child must not keep the task's GPU locks alive after the task ends.

    Closing the child's copies leaves the parent's lock in place (flock locks belong to the open
    file, released when its last descriptor closes); exec'd children never get them (O_CLOEXEC).
    """
    while _held_locks:
        try:
            os.close(_held_locks.pop())
        except OSError:
            pass


os.register_at_fork(after_in_child=_forget_locks_in_child)


if __name__ == "__main__":
    sys.exit(main())
