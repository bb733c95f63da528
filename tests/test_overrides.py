"""Command-line overrides and what run.py says: --set, --as, --show, -v/-q, run logs,
cluster-only options refused locally, a closed stdout pipe."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, TOY_TRIAL
from memlab.cli import plot as plot_cli
from memlab.cli import run as run_cli
from memlab.config import load_experiment
from memlab.errors import UserError
from memlab.overrides import apply_sets, parse_set, split_values

GRID = {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "y": [0.5]},
        "plots": [{"type": "lines", "name": "z", "x": "x", "y": "z"}]}


@pytest.fixture(autouse=True)
def restore_logging():
    """run.py's -v/-q set the `memlab` logger's levels: give the next test today's default."""
    logger = logging.getLogger("memlab")
    levels = logger.level, [h.level for h in logger.handlers]
    yield
    logger.setLevel(levels[0])
    for h, level in zip(logger.handlers, levels[1]):
        h.setLevel(level)


@pytest.fixture
def toy(study):
    study.module("toytrial", TOY_TRIAL)
    study.experiment("t", GRID)
    return study


def run(*args) -> int:
    return run_cli.main(["--no-progress", *map(str, args)])


# ------------------------------------------------------------------------ parsing ---
def test_values_split_on_commas_outside_brackets_and_quotes():
    assert split_values('1,[2,3],"a,b",{"k": [1, 2]}') == ["1", "[2,3]", '"a,b"', '{"k": [1, 2]}']
    assert split_values(r'"a\"b,c",d') == [r'"a\"b,c"', "d"]
    assert parse_set("widths=[512],[256,256]") == ("widths", [[512], [256, 256]])
    assert parse_set("dataset=moons,digits") == ("dataset", ["moons", "digits"])     # bare words: strings
    assert parse_set("x=1, 2.5 ,true,null,\"3\"") == ("x", [1, 2.5, True, None, "3"])
    assert parse_set("n=20") == ("n", [20])
    assert parse_set('n={"type_": "range", "stop": 3}') == ("n", {"type_": "range", "stop": 3})   # shorthand
    for bad, words in [("x", "KEY=VALUES"), ("=1", "KEY=VALUES"), ("x=", "no values"), ("x=1,,2", "empty value"),
                       ("w=[1,2", "not valid JSON")]:
        with pytest.raises(UserError, match=words):
            parse_set(bad)


def test_apply_sets_replaces_in_every_grid_and_adds_missing_keys():
    raw = {"trial": "t", "param_grid": [{"x": [1], "y": [2]}, {"x": [5]}]}
    out = apply_sets(raw, ["y=7,8", "x=0"])
    assert out["param_grid"] == [{"x": [0], "y": [7, 8]}, {"x": [0], "y": [7, 8]}]
    assert raw["param_grid"] == [{"x": [1], "y": [2]}, {"x": [5]}]          # the caller's dict is left alone
    assert apply_sets(raw, []) is raw
    with pytest.raises(UserError, match="given twice"):
        apply_sets(raw, ["x=1", "x=2"])
    with pytest.raises(UserError, match="no param_grid"):
        apply_sets({"plots": [{"type": "dataset_2d", "name": "d", "dataset": "moons"}]}, ["x=1"])


def test_sets_go_through_the_files_validation(toy):
    exp = load_experiment("t", sets=["x=4,5", "y=1", "sleep=0"])      # y is a float parameter, sleep not in the grid
    assert exp.name == "t" and len(exp) == 2
    assert exp.param_grid == [{"x": [4, 5], "y": [1.0], "sleep": [0.0]}]
    assert isinstance(exp.param_grid[0]["y"][0], float)                 # coerced to the declared type
    assert exp.raw["param_grid"] == {"x": [4, 5], "y": [1], "sleep": [0]}   # the experiment as run
    assert len(load_experiment("t", sets=['x={"type_": "range", "stop": 4}'])) == 4


@pytest.mark.parametrize("value, words", [
    ("xx=1", ["--set xx", "has no parameter 'xx'", "did you mean 'x'", "--set KEY=VALUES"]),
    ("y=abc", ["--set y", "not a number", "give --set y valid values"]),
    ("x=[1", ["--set x", "not valid JSON"]),
    ("_x=1", ["--set _x", "reserved"]),
])
def test_a_bad_set_is_exit_2_with_the_fix(toy, capsys, value, words):
    assert run("--name", "t", "--set", value) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fix:" in err and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert not (toy.path / "results").exists()                          # before anything ran


def test_a_new_key_for_a_trial_without_declared_params_is_refused(study):
    study.module("loose", "def trial(params):\n    return {'z': params['x']}\n")
    study.experiment("l", {"trial": "loose", "param_grid": {"x": [1]}})
    assert len(load_experiment("l", sets=["x=1,2,3"])) == 3
    with pytest.raises(UserError, match="declares none") as e:
        load_experiment("l", sets=["xs=1"])
    assert "--set one of the grid's parameters" in str(e.value)


# ------------------------------------------------------------------- --as, plots ---
def test_set_as_runs_a_variant_apart_that_status_and_plot_find_by_its_name(toy, capsys):
    assert run("--name", "t") == 0
    main = pd.read_csv(toy.path / "results" / "t.csv")
    assert run("--name", "t", "--set", "x=7,8", "--set", "y=1.5", "--as", "t_big") == 0
    variant = pd.read_csv(toy.path / "results" / "t_big.csv")
    assert sorted(variant["x"]) == [7, 8] and set(variant["y"]) == {1.5}
    assert (variant["z"] == variant["x"] * 10 + 1.5).all()
    pd.testing.assert_frame_equal(pd.read_csv(toy.path / "results" / "t.csv"), main)   # untouched
    saved = json.loads((toy.path / "results" / "t_big" / "experiment.json").read_text())
    assert saved["experiment_file"]["param_grid"] == {"x": [7, 8], "y": [1.5]}
    capsys.readouterr()
    # no experiments/t_big.json: the saved experiment stands for it
    assert run("--name", "t_big", "--status") == 0
    out = capsys.readouterr()
    assert "t_big: 2 trials: 2 done" in out.out and "saved with its results" in out.err
    assert plot_cli.main(["--name", "t_big", "--format", "png"]) == 0
    assert (toy.path / "plots" / "t_big" / "z.png").stat().st_size > 0
    assert not (toy.path / "plots" / "t").exists()


def test_as_refuses_the_name_of_another_experiment(toy, capsys):
    toy.experiment("other", GRID)
    assert run("--name", "t", "--as", "other") == 2
    err = capsys.readouterr().err
    assert "another experiment" in err and "fix:" in err
    assert run("--name", "t", "--as", "../up") == 2
    assert "not a usable name" in capsys.readouterr().err


# ------------------------------------------------------------------------- --show ---
def test_show_prints_parameters_status_result_traceback_and_provenance(toy, capsys):
    toy.experiment("f", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "fail_at": [2]}})
    assert run("--name", "f") == 1
    capsys.readouterr()
    assert run("--name", "f", "--show", "1") == 0
    out = capsys.readouterr().out
    assert "f: trial 1 (key " in out and "failed" in out
    assert "  x = 2" in out and "  fail_at = 2" in out and "  y = 0.0" in out     # resolved parameters
    assert "error: ValueError: x=2 fails on purpose" in out
    assert "Traceback (most recent call last)" in out and "toytrial.py" in out
    assert "provenance:" in out and "versions: python" in out and "numpy" in out
    key = pd.read_csv(toy.path / "results" / "f.csv").set_index("_index").loc[2, "_key"]
    assert run("--name", "f", "--show", key[:8]) == 0                   # a key prefix
    out = capsys.readouterr().out
    assert "f: trial 2 " in out and ": done" in out and "  z = 30.0" in out and "series: epoch, loss" in out
    assert run("--name", "f", "--set", "x=9", "--show", "0") == 0        # a trial of the variant, not run
    assert "pending (not run yet)" in capsys.readouterr().out
    assert run("--name", "f", "--show", "99") == 2
    assert "trials 0 to 2" in capsys.readouterr().err
    assert run("--name", "f", "--show", "zzzz") == 2
    assert "no trial of 'f'" in capsys.readouterr().err


# ------------------------------------------------------------- verbosity and logs ---
def test_quiet_and_verbose_and_the_run_log(toy, capsys):
    toy.experiment("f", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "fail_at": [2]}})
    assert run("--name", "f", "-q") == 1
    out = capsys.readouterr().out
    assert "x=2 fails on purpose" in out and "failed trials" in out       # failures still shown
    assert "ran 3 trials" not in out and "wrote" not in out               # the summary is not
    logs = list((toy.path / "results" / "f" / "logs").glob("local-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "f: 3 trials, 0 done, 3 to run" in text and "ran 3 trials" in text and "fails on purpose" in text
    saved = json.loads((toy.path / "results" / "f" / "experiment.json").read_text())
    assert saved["run"]["log"] == str(logs[0])
    stamp = logs[0].stem.removeprefix("local-")
    assert (toy.path / "results" / "f" / "runs" / f"{stamp}.json").exists()   # the log is named like the run
    assert run("--name", "f", "-v", "--retry-failed", "--set", "x=1,2,3,4") == 1
    out = capsys.readouterr().out
    assert "trial 3 (" in out and "ok in" in out and "ran 2 trials" in out   # -v: each finished trial
    assert len(list((toy.path / "results" / "f" / "logs").glob("local-*.log"))) == 2


# ------------------------------------------------------ cluster-only, broken pipe ---
@pytest.mark.parametrize("flags, fix", [
    (["--gpus", "1"], "--backend sge"), (["--mem", "4G", "--queue", "all.q"], "drop them"),
    (["--time", "1:00:00"], "--trial-timeout"), (["--slots", "2"], "--backend sge"),
    (["--no-wait"], "--backend sge"), (["--", "-q", "all.q"], "-- -q all.q"),
])
def test_cluster_only_options_are_refused_for_the_local_backend(toy, capsys, flags, fix):
    assert run("--name", "t", *flags) == 2
    err = capsys.readouterr().err
    assert "only for a cluster backend" in err and "fix:" in err and fix in err
    assert not (toy.path / "results").exists()


def test_cluster_options_still_pass_with_a_cluster_backend(toy, capsys):
    assert run("--name", "t", "--backend", "sge", "--gpus", "1", "--mem", "4G", "--dry-run") == 0
    assert "3 trials" in capsys.readouterr().out


def test_a_closed_stdout_ends_quietly_and_the_run_goes_on(toy):
    toy.experiment("many", {"trial": "toytrial", "param_grid": {"x": list(range(60))}})
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--name", "many", "-v"], cwd=toy.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**toy_env(), "PYTHONPATH": str(REPO)})
    proc.stdout.readline()               # `| head -1`: read one line, then go
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert len(pd.read_csv(toy.path / "results" / "many.csv")) == 60
    log = next((toy.path / "results" / "many" / "logs").glob("local-*.log")).read_text()
    assert "ran 60 trials" in log and "trial 59 (" in log

    # an answer (here: 200 kB) cut short by its reader
    code = "import sys; from memlab.log import pipe_safe; sys.exit(pipe_safe(lambda: print('x' * 200_000) or 0))"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**toy_env(), "PYTHONPATH": str(REPO)})
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1 and err == "", err


def toy_env():
    import os
    return {k: v for k, v in os.environ.items() if k != "MEMLAB_ROOT"}
