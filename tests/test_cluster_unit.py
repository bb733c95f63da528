"""The cluster backends without a scheduler: command lines against golden files, the job
scripts run by hand, the task entry, sharing, resources, GPU claims, record tailing.

    python -m pytest -q tests/test_cluster_unit.py
    MEMLAB_UPDATE_GOLDEN=1 python -m pytest -q tests/test_cluster_unit.py   # after a deliberate change

The real schedulers are exercised by tests/test_cluster.py.
"""
from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from memlab import task as task_mod  # noqa: E402
from memlab.backends import cluster, sge, slurm  # noqa: E402
from memlab.config import Trial  # noqa: E402
from memlab.errors import ConfigError  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"

CASES = {   # name -> (experiment file's resources, command-line resources, arguments after --)
    "plain": ({}, {}, []),
    "file resources": ({"gpus": 1, "mem": "4G", "time": "02:00:00", "queue": "gpu.q", "cpus": 4}, {}, []),
    "flags override the file": ({"gpus": 1, "mem": "4G", "time": "02:00:00", "gpu_complex": "gpu_card", "pe": "mpi"},
                                {"gpus": 2, "mem": "1500M", "time": "1-12:00:00", "slots": 3}, []),
    "pass-through": ({}, {}, {"sge": ["-q", "all.q", "-l", "gpu=1"], "slurm": ["--account=lab", "--qos=high"]}),
}


def command_for(sched, case: str) -> list[str]:
    file_res, flags, extra = CASES[case]
    exp = SimpleNamespace(resources=file_res, path=Path("experiments/mnist.json"))
    res = cluster.resources(exp, SimpleNamespace(resources=flags))
    return sched.command(script=Path("/repo") / sched.SCRIPT, python="/repo/.venv/bin/python", repo=Path("/repo"),
                         manifest=Path("/study/results/mnist/manifests/20250101-120000-abcdef.json"),
                         cwd=Path("/study"), logs=Path("/study/results/mnist/logs"), name=cluster.job_name("mnist"),
                         n_tasks=20, res=res, extra=extra[sched.NAME] if isinstance(extra, dict) else extra)


def render(sched) -> str:
    out = [f"# {sched.NAME}: the command lines memlab submits (tests/test_cluster_unit.py checks them)"]
    for case in CASES:
        cmd = command_for(sched, case)
        lines = [[cmd[0]]]
        for a in cmd[1:-4]:          # an option with its values on one line
            if a.startswith("-"):
                lines.append([])
            lines[-1].append(a)
        lines.append(cmd[-4:])      # the job script and its arguments
        out += [f"\n## {case}", " \\\n    ".join(shlex.join(words) for words in lines)]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("sched", [sge, slurm], ids=["sge", "slurm"])
def test_command_lines_match_golden_files(sched):
    path = GOLDEN / f"{sched.NAME}_commands.txt"
    text = render(sched)
    if os.environ.get("MEMLAB_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"the {sched.NAME} command line changed: review, then MEMLAB_UPDATE_GOLDEN=1"


def test_commands_map_each_resource():
    q = command_for(sge, "flags override the file")
    assert q[q.index("-t") + 1] == "1-20" and "-wd" in q and q[-4].endswith("sge.sh")
    assert ["-pe", "mpi", "3"] == q[q.index("-pe"):q.index("-pe") + 3]
    assert "h_vmem=500M" in q            # 1500M for the task, counted per slot by SGE
    assert "h_rt=36:00:00" in q and "gpu_card=2" in q
    s = command_for(slurm, "flags override the file")
    assert {"--array=1-20", "--cpus-per-task=3", "--mem=1500M", "--time=1-12:00:00", "--gres=gpu:2"} <= set(s)
    # arguments after `--` come after ours (so they win) and before the script
    q = command_for(sge, "pass-through")
    assert q[-8:-4] == ["-q", "all.q", "-l", "gpu=1"]


def test_resources_are_validated():
    exp = SimpleNamespace(resources={"mem": "lots"}, path=Path("e.json"))
    with pytest.raises(ConfigError, match="memory"):
        cluster.resources(exp, SimpleNamespace(resources={}))
    exp = SimpleNamespace(resources={"slots": 2, "cpus": 4}, path=Path("e.json"))
    with pytest.raises(ConfigError, match="disagree"):
        cluster.resources(exp, SimpleNamespace(resources={}))
    with pytest.raises(ConfigError, match="time"):
        cluster.parse_time("120")        # seconds or minutes? say it with a unit
    assert cluster.parse_mem("1.5G") == 1536 and cluster.parse_mem("512") == 512 and cluster.parse_mem("2TB") == 2 ** 21
    assert cluster.parse_time("90:00") == 5400 and cluster.parse_time("2h") == 7200
    assert cluster.parse_time("1-00:00:01") == 86401
    assert cluster.format_mem(4096) == "4G" and cluster.format_mem(1500) == "1500M"


def test_job_names_are_valid_everywhere():
    assert cluster.job_name("7 runs/x:y@z") == "memlab-7_runs_x_y_z"


@pytest.mark.parametrize("requested,pending,limit,expected", [
    (3, 14, 75000, 3), (20, 7, 75000, 7), (-1, 7, 75000, 7), (-1, 5000, 1000, 1000), (50, 5000, 1000, 50)])
def test_task_count_is_clamped(requested, pending, limit, expected):
    assert cluster.n_tasks(requested, pending, limit) == expected


def test_deal_is_even_disjoint_and_mixes_costs():
    trials = [Trial(i, f"k{i}", {"cost": i % 3, "n_iter": i // 3}) for i in range(99)]
    shares = cluster.deal(trials, 3)
    assert sorted(t.index for s in shares for t in s) == list(range(99))
    assert {len(s) for s in shares} == {33}
    assert all([t.index for t in s] == sorted(t.index for t in s) for s in shares)
    # round-robin would hand each task one value of the fastest-varying parameter
    assert all(len({t.params["cost"] for t in s}) == 3 for s in shares)
    sums = [sum(t.params["n_iter"] for t in s) for s in shares]   # costs growing along the grid
    assert max(sums) / min(sums) < 1.3
    assert cluster.deal(trials, 3) == shares                     # seeded: the same every time


def test_scheduler_outputs_are_parsed():
    assert sge.parse_job_id("123.1-20:1\n") == "123" and slurm.parse_job_id("45;cluster\n") == "45"
    qstat = textwrap.dedent("""\
        job-ID  prior   name       user         state submit/start at     queue      slots ja-task-ID
        ---------------------------------------------------------------------------------------------
              9 0.50000 memlab-x   root         r     11/23/2026 09:19:06 all.q@vm       1 1
              9 0.50000 memlab-x   root         Eqw   11/23/2026 09:19:06                1 2
             90 0.50000 memlab-x   root         qw    11/23/2026 09:19:06                1 1
        """)
    assert sge.parse_qstat(qstat, "9") == {1: "r", 2: "Eqw"}
    squeue = "12_1|R|None\n12_[4-6%2]|PD|JobArrayTaskLimit\n12_7|PD|JobHeldUser\n120_1|R|None\n"
    states = slurm.parse_squeue(squeue, "12")
    assert sorted(states) == [1, 4, 5, 6, 7] and states[1] == "R"
    assert slurm.stuck("12", states) == {7: "PD (JobHeldUser)"}


def test_record_tail_reads_whole_lines_of_matching_files(tmp_path):
    a, other = tmp_path / "sge-12-1-host-1-x.jsonl", tmp_path / "sge-120-1-host-1-x.jsonl"
    other.write_text('{"key": "not mine"}\n')
    a.write_text('{"key": "k1"}\n{"key": "k')          # the second line is being written
    tail = cluster.RecordTail(tmp_path, ["sge-12-"])
    assert [r["key"] for r in tail.read()] == ["k1"]
    with open(a, "a") as f:
        f.write('2"}\n')
    assert [r["key"] for r in tail.read()] == ["k2"]
    assert list(tail.read()) == []


# ---------------------------------------------------------------- job scripts ---
FAKE_PYTHON = """#!/bin/bash
echo "ARGS $*"
echo "THREADS $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $MKL_NUM_THREADS"
echo "PYTHONPATH $PYTHONPATH"
exit ${FAKE_EXIT:-0}
"""


@pytest.mark.parametrize("script,env", [
    ("sge.sh", {"SGE_TASK_ID": "3", "JOB_ID": "9", "NSLOTS": "4"}),
    ("slurm.sh", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "9", "SLURM_CPUS_PER_TASK": "4"})])
@pytest.mark.parametrize("code,expected", [(0, 0), (3, 3), (99, 1), (100, 1), (137, 137)])
def test_job_script_runs_the_task_with_threads_and_safe_exit_status(tmp_path, script, env, code, expected):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": "/usr/bin:/bin", "FAKE_EXIT": str(code), **env}   # a job's environment is minimal
    out = subprocess.run(["bash", str(REPO / script), str(fake), "/the/repo", "/m.json"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == expected   # 99/100 would make SGE requeue the task or hold the job
    assert "ARGS -m memlab.task /m.json 3" in out.stdout
    assert "THREADS 4 4 4" in out.stdout and "PYTHONPATH /the/repo\n" in out.stdout
    assert f"memlab-task-exit: {code}" in out.stdout


def test_job_script_defaults_to_one_thread(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = subprocess.run(["bash", str(REPO / "sge.sh"), str(fake), "/r", "/m.json"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30)
    assert "THREADS 1 1 1" in out.stdout


# ---------------------------------------------------------------- the task entry ---
TRIAL = """
import os
PARAMS = {"x": 0}
def trial(params):
    return {"y": params["x"] ** 2, "pid": os.getpid()}
"""


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "sq.json").write_text(json.dumps({"trial": "sqtrial", "param_grid": {"x": [1, 2, 3, 4, 5]}}))
    (tmp_path / "sqtrial.py").write_text(TRIAL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from memlab.config import load_experiment
    from memlab.store import Store
    exp = load_experiment("sq")
    trials = list(exp.trials())
    return cluster.write_manifest(Store("sq"), exp, "sge", cluster.deal(trials, 2), {"gpus": 0})


def run_task(manifest, task, job="77"):
    env = {**os.environ, "JOB_ID": job, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "memlab.task", str(manifest), str(task)], env=env,
                          cwd="/", capture_output=True, text=True, timeout=120)


def test_task_runs_its_share_once(manifest, tmp_path):
    m = json.loads(manifest.read_text())
    assert m["trial"] == "sqtrial" and [len(s) for s in m["tasks"]] == [3, 2]
    out = run_task(manifest, 2)
    assert out.returncode == 0, out.stderr
    files = list((tmp_path / "results" / "sq" / "records").glob("sge-77-2-*.jsonl"))
    recs = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["key"] for r in recs) == sorted(t["key"] for t in m["tasks"][1])
    assert all(r["status"] == "ok" and r["result"]["y"] == r["params"]["x"] ** 2 for r in recs)
    # requeued by the scheduler: the trials already recorded are not run again
    assert run_task(manifest, 2).returncode == 0
    recs2 = [line for f in (tmp_path / "results" / "sq" / "records").glob("sge-77-2-*.jsonl")
             for line in f.read_text().splitlines()]
    assert len(recs2) == len(recs)
    assert run_task(manifest, 3).returncode == 2      # no such task in the manifest


def test_editing_the_experiment_after_submission_changes_nothing(manifest, tmp_path):
    (tmp_path / "experiments" / "sq.json").write_text(json.dumps({"trial": "sqtrial", "param_grid": {"x": [9]}}))
    assert run_task(manifest, 1).returncode == 0
    recs = [json.loads(line) for f in (tmp_path / "results" / "sq" / "records").glob("*.jsonl")
            for line in f.read_text().splitlines()]
    assert sorted(r["params"]["x"] for r in recs) == sorted(t["params"]["x"] for t in
                                                            json.loads(manifest.read_text())["tasks"][0])


# ---------------------------------------------------------------- GPUs on SGE ---
@pytest.fixture
def release_gpu_locks():
    yield
    while task_mod._held_locks:
        os.close(task_mod._held_locks.pop())


def test_gpu_claims_prefer_idle_gpus_and_never_collide(tmp_path, release_gpu_locks):
    gpus = [("0", 900.0), ("1", 10.0), ("2", 500.0)]
    assert task_mod.claim_gpus(1, gpus, str(tmp_path)) == ["1"]          # least memory used first
    assert task_mod.claim_gpus(2, gpus, str(tmp_path)) == ["2", "0"]     # 1 is held by the first task
    assert task_mod.claim_gpus(1, gpus, str(tmp_path)) == ["1"]          # none free: share, never fail


def test_assign_gpus_keeps_what_the_site_set(monkeypatch, release_gpu_locks):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert task_mod.assign_gpus(1) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("SGE_HGR_gpu", "2 5")                            # an RSMAP complex names the devices
    assert task_mod.assign_gpus(2) == "2,5"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("SGE_HGR_gpu")
    assert task_mod.assign_gpus(0) is None and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_requeue_skip_ignores_records_of_an_older_job_with_the_same_id(tmp_path):
    (tmp_path / "sge-5-2-host-1-a.jsonl").write_text(
        json.dumps({"key": "old", "status": "ok", "started": 100.0}) + "\n"
        + json.dumps({"key": "new", "status": "ok", "started": 300.0}) + "\n"
        + '{"key": "torn", "started": 400')
    assert task_mod.already_recorded(tmp_path, "sge-5-2", since=200.0) == {"new"}
    assert task_mod.already_recorded(tmp_path, "sge-5-20", since=0) == set()
