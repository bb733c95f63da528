"""The SLURM backend: one array job per run.

    python run.py --name mnist --backend slurm --tasks 20
    python run.py --name mnist --backend slurm --tasks 20 -- --partition=gpu --account=lab

Submits `sbatch --array=1-N ... slurm.sh PYTHON REPO MANIFEST` and follows it with `squeue`;
the shared mechanics (manifest, balancing, waiting, reports) are in memlab/backends/cluster.py.

Resources map to: gpus -> `--gres=gpu:N` (SLURM sets CUDA_VISIBLE_DEVICES), mem -> `--mem`
(per task), time -> `--time`, queue -> `--partition`, slots -> `--cpus-per-task`.
"""
from __future__ import annotations

import re

from memlab.backends import cluster

NAME = "slurm"
SCRIPT = "slurm.sh"
LOG = "slurm-{job}.{task}.log"
CANCEL = "scancel"
STUCK_FIX = "see `scontrol show job {job}` (Reason); release it with `scontrol release {job}` or cancel it " \
            "with `scancel {job}`, then run the command again"
DEFAULT_ARRAY_LIMIT = 1001      # SLURM's default MaxArraySize


def run(exp, pending, store, opts, report) -> None:
    cluster.run(cluster.scheduler(NAME), exp, pending, store, opts, report)


def command(*, script, python, repo, manifest, cwd, logs, name, n_tasks, res, extra) -> list[str]:
    """The sbatch command line; arguments after `--` (extra) come last so they win."""
    cmd = ["sbatch", "--parsable", f"--job-name={name}", f"--array=1-{n_tasks}", f"--chdir={cwd}",
           f"--output={logs}/{LOG.format(job='%A', task='%a')}"]   # %A: the array's job id, %a: task id
    if res.get("queue"):
        cmd.append(f"--partition={res['queue']}")
    if res.get("slots"):
        cmd.append(f"--cpus-per-task={res['slots']}")
    if "mem_mb" in res:
        cmd.append(f"--mem={cluster.format_mem(res['mem_mb'])}")
    if "time_s" in res:
        s = res["time_s"]
        cmd.append(f"--time={s // 86400}-{cluster.hms(s % 86400)}" if s >= 86400 else f"--time={cluster.hms(s)}")
    if res.get("gpus"):
        cmd.append(f"--gres=gpu:{res['gpus']}")
    return cmd + list(extra) + [str(script), str(python), str(repo), str(manifest)]


def parse_job_id(out: str) -> str:
    """`sbatch --parsable` prints 'JOBID' or 'JOBID;CLUSTER'."""
    return out.strip().splitlines()[-1].split(";")[0]


def array_limit() -> int:
    """MaxArraySize from `scontrol show config`: task ids must stay below it."""
    out = cluster.sh(["scontrol", "show", "config"])
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out.stdout, re.M)
    return (int(m[1]) if m else DEFAULT_ARRAY_LIMIT) - 1


def tasks(job: str) -> dict[int, str] | None:
    """Task id -> 'STATE REASON' of the job's tasks still pending or running; {} when it has
    left the queue, None when squeue did not answer."""
    out = cluster.sh(["squeue", "-h", "-r", "-j", job, "-o", "%i|%t|%r"])
    if out.returncode != 0:
        # an id the controller has already forgotten (older than MinJobAge) is an error here
        return {} if "Invalid job id" in out.stderr else None
    return parse_squeue(out.stdout, job)


def parse_squeue(text: str, job: str) -> dict[int, str]:
    found = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].startswith(f"{job}_"):
            task = parts[0].split("_", 1)[1]
            if task.isdigit():
                found[int(task)] = parts[1] if parts[2] in ("None", "") else f"{parts[1]} ({parts[2]})"
            else:   # '123_[4-9]': pending tasks not yet split out, despite -r on some versions
                for a, b in re.findall(r"(\d+)(?:-(\d+))?", task.split("%")[0]):
                    found.update(dict.fromkeys(range(int(a), int(b or a) + 1), f"{parts[1]} ({parts[2]})"))
    return found


def stuck(job: str, states: dict[int, str]) -> dict[int, str]:
    """Tasks held (e.g. 'launch failed requeued held', JobHeldAdmin): they will not run by themselves."""
    return {t: s for t, s in states.items() if "held" in s.lower()}


def cancel(job: str) -> None:
    cluster.sh([CANCEL, job])


def accounting(job: str, task: int) -> str | None:
    """The controller's view of an ended task ('JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0')."""
    out = cluster.sh(["scontrol", "show", "job", f"{job}_{task}"], timeout=15)
    if out.returncode != 0:
        return None
    found = re.findall(r"\b(JobState|Reason|ExitCode)=(\S+)", out.stdout)
    return " ".join(f"{k}={v}" for k, v in found) or None
