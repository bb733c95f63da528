"""Plot specs checked before the compute, one failing plot not stopping the others, and the
report page (`plot.py --format html`), opened in a real browser when Chromium is installed.

    python -m pytest -q tests/test_report.py
    python -m pytest -q tests/test_report.py -m browser     # headless Chromium (.ci/run installs it)
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from memlab.config import load_experiment
from memlab.errors import ConfigError

TRIAL = """
import numpy as np
from memlab.params import REQUIRED, resolve, trial_seed

PARAMS = {"x": REQUIRED, "model": "mlp", "restart": 0, "fail_at": None}
RETURNS = ("z", "acc", "noise_*", "epoch", "loss")

def trial(params):
    p = resolve(PARAMS, params)
    if p["fail_at"] is not None and p["x"] == p["fail_at"]:
        raise ValueError(f"x={p['x']} fails on purpose")
    rng = np.random.default_rng(trial_seed(params))
    return {"z": p["x"] * 10.0, "acc": float(rng.random() < 0.5), "noise_a": float(rng.random()),
            "series": {"epoch": [1, 2, 3], "loss": [p["x"], p["x"] / 2, p["x"] / 4]}}
"""

GOOD_PLOTS = [
    {"type": "lines", "name": "z", "x": "x", "y": "z", "hue": "model"},
    {"type": "curves", "name": "loss", "y": "loss", "hue": "x", "query": "model == 'mlp'"},
]


def experiment(plots, fail_at=None, description="toy grid for the report"):
    return {"description": description, "trial": "reptrial", "plots": plots,
            "param_grid": {"x": [1, 2, 3, 4], "model": ["mlp", "cnn"], "restart": [0, 1, 2],
                           "fail_at": [fail_at]}}


# --- specs checked at load (and so by run.py --dry-run) ---------------------------------------

@pytest.mark.parametrize("bad, key", [
    pytest.param({"type": "lines", "name": "l", "x": "x", "y": "z", "hue": "modle"}, "plots[2].hue", id="hue"),
    pytest.param({"type": "heatmap", "name": "h", "idx": "x", "col": "model", "val": "acc_"}, "plots[2].val", id="val"),
    pytest.param({"type": "lines", "name": "q", "x": "x", "y": "z", "query": "restart == 0 and modle == 'mlp'"},
                 "plots[2].query", id="query"),
    pytest.param({"type": "curves", "name": "c", "y": "los"}, "plots[2].y", id="series"),
    pytest.param({"type": "receptive_fields", "name": "r", "where": {"x": 1, "restrat": 0}}, "plots[2].where.restrat",
                 id="where"),
])
def test_plot_naming_a_column_the_trial_does_not_produce_fails_at_load(study, bad, key):
    study.module("reptrial", TRIAL)
    study.experiment("toy", experiment([*GOOD_PLOTS, bad]))
    with pytest.raises(ConfigError) as e:
        load_experiment("toy")
    word = re.search(r"names column '([^']+)'", e.value.message).group(1)
    assert e.value.key == key and word in json.dumps(bad)
    assert "does not produce" in str(e.value) and "did you mean" in str(e.value)
    if key.endswith(".hue"):   # the example, through the command line: no trial runs
        r = study.cli("run.py", "--name", "toy", "--dry-run")
        assert r.returncode == 2 and key in r.stderr and "'modle'" in r.stderr
        assert not (study.path / "results").exists()


def test_columns_known_to_the_check(study):
    """Parameters (the grid's and PARAMS'), RETURNS with their * patterns, _index, _key and the
    derived interpolated / n_samples columns all pass."""
    study.module("reptrial", TRIAL.replace('"z", "acc"', '"z", "acc", "score"'))
    ok = [{"type": "lines", "name": "a", "x": "fail_at", "y": "noise_a", "hue": "model"},
          {"type": "heatmap", "name": "b", "idx": "x", "col": "_index", "val": "interpolated"},
          {"type": "lines", "name": "c", "x": "x", "y": "z", "query": "`model` == 'mlp' and x.between(1, 2)"}]
    study.experiment("toy", experiment(ok))
    assert len(load_experiment("toy").plots) == 3
    study.module("reptrial", TRIAL.replace('RETURNS = ("z", "acc", "noise_*", "epoch", "loss")', ""))
    study.experiment("toy", experiment([{"type": "lines", "name": "l", "x": "x", "y": "anything"}]))
    load_experiment("toy")   # a module that declares no RETURNS is not checked


def test_shipped_trial_modules_declare_what_they_return():
    """Read from the source (importing torch and jax here would cost seconds)."""
    import ast
    from pathlib import Path

    from memlab.config import TRIALS
    root = Path(__file__).resolve().parent.parent
    for name, module in TRIALS.items():
        tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
        found = [n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", None) == "RETURNS" for t in n.targets)]
        assert found, f"{module} declares no RETURNS"
        returns = ast.literal_eval(found[0])
        assert returns and all(isinstance(c, str) for c in returns), name


# --- one failing plot --------------------------------------------------------------------------

def run_grid(study, plots, fail_at=None):
    study.module("reptrial", TRIAL)
    study.experiment("toy", experiment(plots, fail_at))
    r = study.cli("run.py", "--name", "toy")
    assert r.returncode in (0, 1), r.stderr
    return r


def test_one_failing_plot_does_not_stop_the_others(study):
    bad = {"type": "slices", "name": "bad", "x": "x", "y": "z", "hue": "model", "values": ["rnn"]}
    run_grid(study, [GOOD_PLOTS[0], bad, GOOD_PLOTS[1]])
    r = study.cli("plot.py", "--name", "toy", "--format", "png", "--dpi", "40")
    assert r.returncode == 1
    assert "plot 'bad' (slices) failed" in r.stderr and "model = rnn" in r.stderr
    assert "1 of 3 plots failed: bad" in r.stderr
    out = study.path / "plots" / "toy"
    assert (out / "z.png").exists() and (out / "loss.png").exists() and not (out / "bad.png").exists()
    from matplotlib.image import imread
    small = imread(out / "z.png").shape
    r = study.cli("plot.py", "--name", "toy", "--format", "png", "--only", "z")
    assert r.returncode == 0, r.stderr
    assert imread(out / "z.png").shape[1] > 5 * small[1]   # default 300 dpi against --dpi 40


# --- the report page ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A run with failures and one failing plot, and its report page (built once: two tests read it)."""
    from conftest import Study
    study = Study(tmp_path_factory.mktemp("report"))
    (study.path / "experiments").mkdir()
    bad = {"type": "lines", "name": "broken", "x": "x", "y": "z", "query": "x > 100"}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MEMLAB_ROOT", raising=False)
        run_grid(study, [*GOOD_PLOTS, bad], fail_at=3)
        r = study.cli("plot.py", "--name", "toy", "--format", "html")
    assert r.returncode == 1 and "broken" in r.stderr      # the page is written all the same
    path = study.path / "plots" / "toy" / "index.html"
    assert str(path) in r.stdout
    return path


def embedded(text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


def test_report_page_holds_everything(page):
    text = page.read_text()
    out = page.parent
    assert "toy grid for the report" in text and "reptrial" in text
    # the grid: 24 trials, 6 with x = 3 failed
    for k, n in (("done", 18), ("failed", 6), ("pending", 0)):
        assert re.search(rf'id="n-{k}">{n}<', text), k
    # every figure beside it, the failing one explained
    imgs = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(imgs) == ["loss.png", "z.png"] and all((out / i).stat().st_size > 1000 for i in imgs)
    assert "broken" in text and "selects no rows" in html.unescape(text)
    assert "lines: mean of 3 trials" in text          # the caption beside the figure
    # every failure with its traceback
    assert text.count("<details>") == 6 and "x=3 fails on purpose" in text and "Traceback" in text
    # provenance
    assert "git commits" in text and "time span" in text and "numpy" in text
    # the table: every finished trial, with the derived and returned columns
    data = embedded(text)
    assert len(data["rows"]) == 18 and {"x", "model", "z", "acc", "noise_a"} <= set(data["columns"])
    z = data["columns"].index("z")
    assert sorted({row[z] for row in data["rows"]}) == [10.0, 20.0, 40.0]
    assert (out / "results.csv").exists()
    # self-contained: nothing is fetched from the network when it is viewed
    assert not re.search(r'(src|href)="(https?:)?//', text) and "@import" not in text


def test_big_tables_are_shown_per_grid_point(study, monkeypatch):
    from memlab.plots import report
    monkeypatch.setattr(report, "MAX_ROWS", 10)
    run_grid(study, GOOD_PLOTS)
    exp = load_experiment("toy")
    import pandas as pd
    df = pd.read_csv(study.path / "results" / "toy.csv")
    table = report.table_payload(exp, df)
    rows = json.loads(table["rows"])
    assert len(rows) == 8 and "trials" in table["columns"] and "restart" not in table["columns"]
    assert "means over restart" in table["note"]
    t = table["columns"].index("trials")
    assert {row[t] for row in rows} == {3}


def test_report_is_cheap_for_a_big_grid(study):
    """20,400 finished trials: the page (status, table, failures, provenance) in a few seconds."""
    from memlab.plots.report import write_report
    from memlab.store import Store
    study.module("reptrial", TRIAL)
    config = experiment(GOOD_PLOTS)
    config["param_grid"] = {"x": list(range(200)), "model": ["mlp", "cnn"], "restart": list(range(51))}
    study.experiment("big", config)
    exp = load_experiment("big")
    store = Store("big")
    store.records_dir.mkdir(parents=True)
    prov = {"git": "abc", "dirty": False, "host": "h", "versions": {"numpy": np.__version__}}
    rows = []
    with open(store.records_dir / "w.jsonl", "w") as f:
        for t in exp.trials():
            result = {"z": t.params["x"] * 10.0, "acc": 1.0, "noise_a": 0.5}
            f.write(json.dumps({"key": t.key, "_index": t.index, "params": t.params, "seconds": 0.1,
                                "started": 1e9 + t.index, "prov": prov, "status": "ok", "result": result}) + "\n")
            rows.append({**t.params, "_index": t.index, "_key": t.key, **result})
    import pandas as pd
    df = pd.DataFrame(rows)
    t0 = time.process_time()
    path = write_report(exp, store, [], study.path / "plots" / "big", df)
    seconds = time.process_time() - t0
    assert seconds < 15, seconds
    data = embedded(path.read_text())
    assert len(data["rows"]) == 400   # 20,400 trials as 400 grid points (means over restart)
    assert re.search(r'id="n-done">20,400<', path.read_text())


# --- in a real browser -------------------------------------------------------------------------

def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--allow-file-access-from-files"]


@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="needs Chromium (Debian's chromium package; .ci/run installs it)")
def test_report_page_in_a_real_browser(page, tmp_path):
    """Headless Chromium: the figures load, the table sorts on a header click, and a screenshot
    shows a page (not a blank one)."""
    url = page.as_uri()

    def dom(fragment: str) -> str:
        r = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--virtual-time-budget=5000", "--dump-dom",
                            f"{url}#{fragment}"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    body = re.search(r"<body([^>]*)>", dom("click=z")).group(1)
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body))
    assert attrs["figures"] == "2" and attrs["figures-loaded"] == "2"     # both PNGs decoded
    assert attrs["sorted"] == "z:asc" and attrs["rows"] == "18"
    text = dom("click=z")
    cells = re.search(r'<div id="table">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    data = embedded(page.read_text())
    zcol = data["columns"].index("z")
    shown = [float(re.findall(r"<td[^>]*>([^<]*)</td>", row)[zcol]) for row in re.findall(r"<tr>(.*?)</tr>", cells)]
    assert shown == sorted(shown) and shown[0] == 10.0 and shown[-1] == 40.0
    filtered = dom("sort=z:desc&filter=model:cnn")
    assert 'data-rows="9"' in filtered and 'data-sorted="z:desc"' in filtered
    shot = tmp_path / "report.png"
    r = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--window-size=1200,1600", f"--screenshot={shot}", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    from matplotlib.image import imread
    pixels = imread(shot)[..., :3].reshape(-1, 3)
    assert len(np.unique((pixels * 255).astype(np.uint8), axis=0)) > 200   # figures and text, not blank
    shutil.copy(shot, page.parent / "screenshot.png")   # kept beside the page for a look
