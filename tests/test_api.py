"""The Python API (memlab.run / results / plot / load) on a toy trial, and the README's example."""
from __future__ import annotations

import json
import re
import shutil

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

import memlab  # noqa: E402
from conftest import REPO, TOY_TRIAL  # noqa: E402
from memlab.errors import ConfigError, UserError  # noqa: E402

PLOTS = [{"type": "lines", "name": "z", "x": "x", "y": "z", "hue": "y"},
         {"type": "heatmap", "name": "grid", "idx": "y", "col": "x", "val": "z"}]


@pytest.fixture
def toy(study):
    study.module("toytrial", TOY_TRIAL)
    study.experiment("t", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "y": [0.0, 0.5]}, "plots": PLOTS})
    return study


def test_run_by_name_returns_table_status_and_failures(toy):
    toy.experiment("f", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "fail_at": [2]}})
    r = memlab.run("f")
    assert r.exit_code == 1
    assert r.status == memlab.Status(trials=3, done=2, failed=1, pending=0)
    assert sorted(r.table["x"]) == [1, 3] and list(r.table["z"]) == [10.0, 30.0]
    assert list(r.failed["x"]) == [2]
    assert r.failed["error"][0] == "ValueError: x=2 fails on purpose"
    assert "Traceback" in r.failed["traceback"][0]
    s = r.series
    assert len(s) == 2 * 3 and set(s["loss"]) == {1.0, 0.5, 0.25, 3.0, 1.5, 0.75}
    # the same table the CLI writes, read back later by name
    pd.testing.assert_frame_equal(memlab.results("f"), pd.read_csv(toy.path / "results" / "f.csv"))


def test_run_resumes_like_the_cli(toy):
    log = toy.path / "ran.log"
    toy.experiment("r", {"trial": "toytrial", "param_grid": {"x": [1, 2], "log": [str(log)]}})
    assert memlab.run("r").exit_code == 0
    r = memlab.run("r", tasks=2)
    assert r.exit_code == 0 and r.status.done == 2
    assert len(log.read_text().split()) == 2          # the second call ran nothing


def test_set_replaces_grid_values_and_name_keeps_the_variant_apart(toy):
    r = memlab.run("t", set={"x": [7, 8], "y": 1.0}, name="t_quick")
    assert r.name == "t_quick"
    assert sorted(zip(r.table["x"], r.table["y"])) == [(7, 1.0), (8, 1.0)]
    assert not (toy.path / "results" / "t.csv").exists()       # the main experiment untouched
    assert json.loads((toy.path / "experiments" / "t.json").read_text())["param_grid"]["x"] == [1, 2, 3]


def test_set_is_validated_like_the_file(toy):
    with pytest.raises(ConfigError, match="has no parameter 'xx'") as e:
        memlab.run("t", set={"xx": [1]})
    assert str(e.value.file) == str(toy.path / "experiments" / "t.json")   # the user's file, not a copy
    assert "did you mean 'x'" in str(e.value)
    with pytest.raises(ConfigError, match="empty"):
        memlab.load("t", set={"x": []})
    assert not (toy.path / "results").exists()                 # nothing ran


def test_dict_experiment_needs_a_name_and_is_validated(toy):
    exp = {"trial": "toytrial", "param_grid": {"x": [4, 5]}}
    with pytest.raises(UserError, match="needs a name"):
        memlab.run(exp)
    r = memlab.run(exp, name="from_dict")
    assert list(r.table["z"]) == [40.0, 50.0]
    assert (toy.path / "results" / "from_dict.csv").exists()
    with pytest.raises(ConfigError, match="unknown top-level key 'param_grd'") as e:
        memlab.load({"trial": "toytrial", "param_grd": {}}, name="bad")
    assert e.value.file == "<dict bad>"


def test_bad_options_are_refused_before_anything_runs(toy):
    with pytest.raises(UserError, match="(?s)unknown backend 'sgee'.*did you mean 'sge'"):
        memlab.run("t", backend="sgee")
    with pytest.raises(UserError, match="tasks"):
        memlab.run("t", tasks=0)
    with pytest.raises(UserError, match="no option 'retry'"):
        memlab.run("t", retry=True)
    assert not (toy.path / "results").exists()


def test_results_decodes_list_parameters(toy):
    toy.module("listtrial", """
        from memlab.params import resolve
        PARAMS = {"widths": [512], "tag": "[not json"}
        def trial(params):
            p = resolve(PARAMS, params)
            return {"n": sum(p["widths"]), "tag_len": len(p["tag"])}
    """)
    toy.experiment("l", {"trial": "listtrial", "param_grid": {"widths": [[512], [256, 256]], "tag": ["[not json"]}})
    memlab.run("l")
    df = memlab.results("l")
    assert list(df["widths"]) == [[512], [256, 256]]
    assert list(df["tag"]) == ["[not json"] * 2        # text that only looks like JSON stays text
    with pytest.raises(UserError, match="no results yet"):
        memlab.results("never_run")


def test_plot_returns_figures_and_composes_panels_into_your_axes(toy):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    r = memlab.run("t")
    figs = memlab.plot("t")
    assert [type(f) for f in figs] == [Figure, Figure]
    one = memlab.plot("t", only="grid")
    def n_axes(f):      # the colour bar may be an inset of the heatmap's axes (as tall as its cells)
        return len(f.axes) + sum(len(a.child_axes) for a in f.axes)
    assert isinstance(one, Figure) and n_axes(one) == 2               # the heatmap and its colour bar
    fig, axs = plt.subplots(1, 3, figsize=(9, 3), layout="constrained")
    out = r.plot(only=["z", "grid"], ax=axs[:2])
    assert out == [fig, fig]
    assert len(fig.subfigs) == 2 and axs[2] in fig.axes and axs[0] not in fig.axes
    assert fig.subfigs[1].axes[0].get_xlabel() == "x"               # the heatmap drew in the 2nd cell
    assert n_axes(fig.subfigs[1]) == 2                               # its colour bar stayed in the cell
    with pytest.raises(UserError, match="1 axes for 2 plots"):
        memlab.plot("t", ax=axs[2])
    plt.close("all")


def test_api_is_imported_lazily():
    import subprocess
    import sys
    code = "import memlab, sys; assert 'memlab.api' not in sys.modules; memlab.run; assert 'memlab.api' in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```\s*<!-- /api-example -->", text, re.S)
    assert block, "README.md lost its <!-- api-example --> block"
    return block.group(1)


@pytest.mark.slow
def test_readme_example_runs(study):
    shutil.copy(REPO / "experiments" / "moons_demo.json", study.path / "experiments")
    import matplotlib.pyplot as plt
    namespace = {}
    exec(compile(readme_example(), "README.md (api-example)", "exec"), namespace)
    r = namespace["r"]
    assert r.status.pending == 0 and r.status.failed == 0 and r.status.done == len(r.table) > 0
    assert (study.path / "moons_quick.png").stat().st_size > 10_000
    assert not (study.path / "results" / "moons_demo.csv").exists()
    plt.close("all")
