"""The installable package: light imports, console scripts, the missing-framework message."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

HEAVY = ("pandas", "matplotlib", "scipy", "sklearn", "torch", "jax", "numba")


def python(code: str) -> str:
    """What a fresh interpreter prints running `code` from the repository root (it must succeed)."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def imported_after(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    return json.loads(python(probe).strip().splitlines()[-1])


def test_registries_and_light_clis_import_no_heavy_library():
    # every dataset and plot type registered, the data/plot CLIs parsed: still no pandas, scipy, ...
    code = ("import memlab, memlab.datasets, memlab.plots, memlab.cli.data, memlab.cli.plot\n"
            "assert 'moons' in memlab.datasets.DATASETS and 'heatmap' in memlab.plots.PLOTS")
    assert imported_after(code) == []


def test_lazy_module_imports_on_first_attribute():
    code = ("from memlab.lazy import lazy\nimport sys\nst = lazy('statistics')\n"
            "assert 'statistics' not in sys.modules\nassert st.mean([1, 2, 3]) == 2\n"
            "assert 'statistics' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def without(modules: tuple[str, ...]) -> str:
    """Python source that makes importing `modules` fail as if they were not installed."""
    return ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            f"    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {modules!r}:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n")


def test_a_trial_importing_a_missing_framework_gets_the_install_line():
    # the real autoencoder trial, in an interpreter where torch is not installed
    code = without(("torch",)) + (
        "from memlab import extras\n"
        "try:\n"
        "    import memlab.trials.autoencoder\n"
        "except ModuleNotFoundError as e:\n"
        "    err = extras.missing(e, \"trial 'autoencoder'\", file='experiments/autoencoder.json', key='trial')\n"
        "    print(err)\n")
    out = python(code)
    assert "trial 'autoencoder' needs torch, which is not installed" in out
    assert "fix: pip install 'memlab[torch]'" in out


def test_a_framework_chosen_in_the_grid_is_checked_at_load():
    # sgd imports torch or jax only inside the trial: the grid's `framework` values are checked
    code = without(("jax", "flax", "optax")) + (
        "from memlab import extras\nfrom memlab.trials import sgd\nfrom memlab.errors import ConfigError\n"
        "extras.check(sgd, [{'framework': ['torch']}], 'e.json', 'sgd')   # torch is there: fine\n"
        "try:\n"
        "    extras.check(sgd, [{'framework': ['torch', 'jax']}], 'e.json', 'sgd')\n"
        "except ConfigError as e:\n"
        "    print(e)\n")
    out = python(code)
    assert "key 'param_grid.framework': trial 'sgd' with framework 'jax' needs jax" in out
    assert "pip install 'memlab[jax]'" in out


def test_missing_is_none_for_other_modules():
    from memlab import extras
    assert extras.missing(ModuleNotFoundError("x", name="mytrial_helper"), "trial 'x'") is None
    assert extras.install_line("flax.linen") == "pip install 'memlab[jax]'"


def test_without_pyarrow_no_parquet_is_written_and_nothing_fails(tmp_path):
    code = without(("pyarrow",)) + (
        "import pandas as pd\nfrom memlab.export import write_parquet\n"
        f"print(write_parquet(pd.DataFrame({{'x': [1]}}), {str(tmp_path / 'r.parquet')!r}))\n")
    out = python(code)
    assert out.strip() == "None" and not (tmp_path / "r.parquet").exists()


def test_the_wheel_holds_the_package_its_commands_and_a_light_core(tmp_path):
    import shutil
    import zipfile
    src = tmp_path / "src"   # a copy, so the build leaves nothing (build/, *.egg-info) in the repository
    shutil.copytree(REPO / "memlab", src / "memlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "experiments", src / "experiments")
    (src / "tests").mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", src / "tests")
    for name in ("pyproject.toml", "README.md", "run.py", "plot.py", "data.py", "algorithm.py", "utils.py"):
        shutil.copy(REPO / name, src)   # the top-level scripts and folders must stay out of the wheel
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    wheel, = tmp_path.glob("memlab-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for module in ("memlab/api.py", "memlab/algorithm.py", "memlab/cli/run.py", "memlab/trials/sgd.py",
                   "memlab/datasets/registry.py", "memlab/plots/grid.py", "memlab/backends/sge.py",
                   "memlab/backends/jobs/sge.sh", "memlab/backends/jobs/slurm.sh"):
        assert module in names
    assert not any(n.startswith(("tests/", "benchmarks/", "experiments/")) or n in ("run.py", "algorithm.py")
                   for n in names)
    for script in ("memlab-run = memlab.cli.run:main", "memlab-plot = memlab.cli.plot:main",
                   "memlab-data = memlab.cli.data:main"):
        assert script in entry
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requires if "extra ==" not in r]
    assert sorted(core) == sorted(["numpy", "scipy", "scikit-learn", "pandas", "joblib", "numba", "matplotlib", "tqdm"])
    assert any(r.startswith("torch") and 'extra == "torch"' in r for r in requires)
    assert any(r.startswith("jax") and 'extra == "jax"' in r for r in requires)


def test_status_and_dry_run_of_an_algorithm_grid_import_neither_sklearn_nor_numba():
    # reading the experiment needs the trial's PARAMS, not its estimator (memlab/algo/estimator.py)
    for flag in ("--status", "--dry-run"):
        code = ("from memlab.cli.run import main\n"
                f"try:\n    main(['--name', 'moons_demo', '{flag}'])\nexcept SystemExit as e:\n    assert not e.code\n")
        assert not {"sklearn", "numba", "torch", "jax"} & set(imported_after(code)), flag


def test_the_algorithm_fingerprint_covers_its_estimator_module(tmp_path, monkeypatch):
    import importlib.util

    import memlab.algorithm
    from memlab.trials import fingerprint
    before = fingerprint(memlab.algorithm)
    copy = tmp_path / "estimator.py"
    copy.write_text(open(importlib.util.find_spec("memlab.algo.estimator").origin).read() + "\n# changed\n")
    spec = importlib.util.spec_from_file_location("memlab.algo.estimator", copy)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert fingerprint(memlab.algorithm) != before
    assert memlab.algorithm.Memorizer.__module__ == "memlab.algo.estimator"
