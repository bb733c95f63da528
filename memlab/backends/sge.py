"""The SGE backend (Son of / Open / Univa Grid Engine): one array job per run.

    python run.py --name mnist --backend sge --tasks 20
    python run.py --name mnist --backend sge --tasks 20 -- -q all.q -l gpu=1

Submits `qsub -t 1-N ... sge.sh PYTHON REPO MANIFEST` and follows it with `qstat`; the shared
mechanics (manifest, balancing, waiting, reports) are in memlab/backends/cluster.py.

Resources map to: gpus -> `-l GPU_COMPLEX=N` (resources.gpu_complex, default "gpu"),
mem -> `-l h_vmem=` (divided by the slots: SGE counts h_vmem per slot), time -> `-l h_rt=`,
queue -> `-q`, slots -> `-pe PE N` (resources.pe, default "smp").
"""
from __future__ import annotations

from memlab.backends import cluster

NAME = "sge"
SCRIPT = "sge.sh"
LOG = "sge-{job}.{task}.log"
CANCEL = "qdel"
STUCK_FIX = "see `qstat -j {job}` (error reason); clear the error with `qmod -cj {job}` or delete it " \
            "with `qdel {job}`, then run the command again"
DEFAULT_ARRAY_LIMIT = 75000     # SGE's default max_aj_tasks


def run(exp, pending, store, opts, report) -> None:
    cluster.run(cluster.scheduler(NAME), exp, pending, store, opts, report)


def command(*, script, python, repo, manifest, cwd, logs, name, n_tasks, res, extra) -> list[str]:
    """The qsub command line; arguments after `--` (extra) come last so they win."""
    cmd = ["qsub", "-terse", "-N", name, "-t", f"1-{n_tasks}", "-wd", str(cwd),
           # SGE expands $JOB_ID and $TASK_ID in the path itself (they are not shell variables here)
           "-o", f"{logs}/{LOG.format(job='$JOB_ID', task='$TASK_ID')}", "-j", "y",
           "-S", "/bin/bash",   # whatever the queue's shell_start_mode says
           "-w", "e"]           # reject a request no queue can ever satisfy now, instead of waiting forever
    if res.get("queue"):
        cmd += ["-q", str(res["queue"])]
    slots = res.get("slots")
    if slots:
        cmd += ["-pe", res.get("pe", "smp"), str(slots)]
    if "mem_mb" in res:
        cmd += ["-l", f"h_vmem={cluster.format_mem(max(1, res['mem_mb'] // (slots or 1)))}"]
    if "time_s" in res:
        cmd += ["-l", f"h_rt={cluster.hms(res['time_s'])}"]
    if res.get("gpus"):
        cmd += ["-l", f"{res.get('gpu_complex', 'gpu')}={res['gpus']}"]
    return cmd + list(extra) + [str(script), str(python), str(repo), str(manifest)]


def parse_job_id(out: str) -> str:
    """`qsub -terse` prints '123.1-20:1' for an array job."""
    return out.strip().splitlines()[-1].split(".")[0]


def array_limit() -> int:
    """The cell's max_aj_tasks (qconf -sconf); 0 there means unlimited."""
    out = cluster.sh(["qconf", "-sconf"])
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "max_aj_tasks" and parts[1].isdigit():
            return int(parts[1]) or 10 ** 9
    return DEFAULT_ARRAY_LIMIT


def tasks(job: str) -> dict[int, str] | None:
    """Task id -> state ('qw', 'r', 'Eqw', ...) of the job's tasks still in the queue; {} when it
    has left, None when qstat did not answer."""
    out = cluster.sh(["qstat", "-g", "d"])   # -g d: one line per array task, pending ones too
    return parse_qstat(out.stdout, job) if out.returncode == 0 else None


def parse_qstat(text: str, job: str) -> dict[int, str]:
    found = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == job:
            task = f[-1]
            found[int(task) if task.isdigit() else 0] = f[4]
    return found


def stuck(job: str, states: dict[int, str]) -> dict[int, str]:
    """Tasks in an error state (E: they will never run without an admin), with qstat's reason."""
    bad = {t: s for t, s in states.items() if "E" in s}
    if not bad:
        return {}
    reason = ""
    out = cluster.sh(["qstat", "-j", job])
    for line in out.stdout.splitlines():
        if line.startswith("error reason"):
            reason = line.split(":", 1)[1].strip()
            break
    return {t: f"state {s}" + (f" ({reason})" if reason else "") for t, s in bad.items()}


def cancel(job: str) -> None:
    cluster.sh([CANCEL, job])


def accounting(job: str, task: int) -> str | None:
    """qacct's view of an ended task ('failed 100 : assumedly after job, exit_status 137'), if any."""
    out = cluster.sh(["qacct", "-j", job, "-t", str(task)], timeout=15)
    if out.returncode != 0:
        return None
    fields = {}
    for line in out.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in ("failed", "exit_status"):
            fields[parts[0]] = parts[1].strip()
    if not fields:
        return None
    return ", ".join(f"{k} {v}" for k, v in fields.items())
