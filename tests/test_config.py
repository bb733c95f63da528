"""Bad input: each a short error naming the file, the key and the fix; exit 2; nothing runs."""
from __future__ import annotations

import pytest

from conftest import TOY_TRIAL
from memlab.config import load_experiment
from memlab.errors import ConfigError
from memlab.params import trial_key, trial_seed


@pytest.fixture
def toy(study):
    study.module("toytrial", TOY_TRIAL)
    return study


def error_of(study, config) -> ConfigError:
    study.experiment("bad", config)
    with pytest.raises(ConfigError) as e:
        load_experiment("bad")
    return e.value


def test_malformed_json_names_line_and_column(toy):
    e = error_of(toy, '{"trial": "toytrial",\n "param_grid": {"x": [1,]}}')
    assert "line 2" in str(e) and "column" in str(e) and "bad.json" in str(e)


def test_unknown_top_level_key_suggests_the_closest(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": [1]}, "plot": []})
    assert e.key == "plot" and "did you mean 'plots'" in str(e)


def test_missing_trial_module(toy):
    e = error_of(toy, {"trial": "no_such_trial", "param_grid": {"x": [1]}})
    assert e.key == "trial" and "no trial module 'no_such_trial'" in str(e)


def test_module_without_trial_function(toy):
    toy.module("notatrial", "X = 1\n")
    e = error_of(toy, {"trial": "notatrial", "param_grid": {"x": [1]}})
    assert "has no trial(params) function" in str(e)


def test_misspelt_trial_parameter(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": [1], "slepe": [0.1]}})
    assert e.key == "param_grid.slepe" and "did you mean 'sleep'" in str(e)


def test_missing_required_parameter(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"y": [1]}})
    assert "needs parameter 'x'" in str(e)


def test_range_without_stop(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": {"type_": "range", "start": 1}}})
    assert e.key == "param_grid.x.stop" and "'range' needs 'stop'" in str(e)


def test_unknown_shorthand(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": {"type_": "rnage", "stop": 3}}})
    assert "did you mean 'range'" in str(e)


def test_empty_grid(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": []}})
    assert "empty" in str(e)


def test_unknown_plot_type(toy):
    e = error_of(toy, {"trial": "toytrial", "param_grid": {"x": [1]},
                       "plots": [{"type": "heatmapp", "name": "h"}]})
    assert "unknown plot type 'heatmapp'" in str(e) and "plots[0].type" in str(e)


def test_shorthands_expand_like_numpy(toy):
    toy.experiment("ok", {"trial": "toytrial", "param_grid": [
        {"x": {"type_": "range", "start": 0, "stop": 0.35, "step": 0.05}},
        {"x": {"type_": "linspace", "start": 0, "stop": 1, "num": 3}, "y": {"type_": "logspace", "start": 0, "stop": 2, "num": 3}},
    ]})
    exp = load_experiment("ok")
    xs = [t.params["x"] for t in exp.trials()]
    # numpy.arange's 0.15000000000000002 is stored and keyed as 0.15
    assert xs[:7] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    assert len(exp) == 7 + 9
    # the first grid leaves y at its declared default (0.0): a resolved parameter like any other
    assert sorted({t.params["y"] for t in exp.trials()}) == [0.0, 1.0, 10.0, 100.0]


def test_key_and_seed_come_from_parameters_not_position(toy):
    a = {"x": 1, "y": 0.5}
    assert trial_key(a) == trial_key({"y": 0.5, "x": 1.0, "_index": 7})      # order, 1 == 1.0, bookkeeping
    assert trial_key(a) != trial_key({"x": 1, "y": 0.25})
    assert trial_seed(a) == trial_seed({**a, "_index": 99}) != trial_seed({"x": 2, "y": 0.5})
    assert trial_seed({"seed": 3, "x": 1}) == 3
    # extending a grid keeps the keys of the trials that were there
    toy.experiment("g", {"trial": "toytrial", "param_grid": {"x": [1, 2]}})
    before = {t.key for t in load_experiment("g").trials()}
    toy.experiment("g", {"trial": "toytrial", "param_grid": {"x": [0, 1, 2, 3]}})
    assert before < {t.key for t in load_experiment("g").trials()}


DSTRIAL = """
from memlab.datasets import DATASET_PARAMS
PARAMS = dict(DATASET_PARAMS)
def trial(params):
    return {}
"""


@pytest.mark.parametrize("config, expected", [
    ('{"trial": "toytrial", "param_grid": {"x": [1]}, "plotz": []}', "did you mean 'plots'"),
    ({"trial": "dstrial", "param_grid": {"dataset": ["moonz"]}}, "did you mean 'moons'"),
])
def test_cli_exits_2_before_running(toy, config, expected):
    toy.module("dstrial", DSTRIAL)
    toy.experiment("bad", config)
    r = toy.cli("run.py", "--name", "bad")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and "fix:" in r.stderr and expected in r.stderr
    assert not (toy.path / "results" / "bad" / "records").exists()


def test_missing_dataset_names_the_data_command(study):
    study.module("dstrial", DSTRIAL)
    import memlab.datasets.registry as reg
    reg.register("needs_download", kind="image", on_demand=False, default=False, shape=(3, 1))(
        lambda source=None: {"X": [[0.0]], "y": [0]})
    try:
        study.experiment("dl", {"trial": "dstrial", "param_grid": {"dataset": ["needs_download"]}})
        exp = load_experiment("dl")
        from memlab import runner
        from memlab.errors import DatasetError
        with pytest.raises(DatasetError, match="python data.py --name needs_download"):
            runner.run(exp, runner.RunOptions(progress=False))
        assert runner.dry_run(exp) == 0      # a dry run still works, and says what is missing
    finally:
        reg.DATASETS.pop("needs_download")


def test_plot_only_file_in_the_reference_format(study):
    study.experiment("lines", {"plots": [{"type": "dataset_2d", "name": "dataset", "dataset": "lines"}]})
    exp = load_experiment("lines")
    assert exp.plot_only and len(exp) == 0
    r = study.cli("run.py", "--name", "lines")
    assert r.returncode == 0 and "plot-only" in r.stdout
    r = study.cli("plot.py", "--name", "lines", "--format", "png")
    assert r.returncode == 0, r.stderr
    assert (study.path / "plots" / "lines" / "dataset.png").stat().st_size > 1000
