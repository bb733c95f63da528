"""The installable package: light imports, console scripts, the missing-framework message."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

HEAVY = ("pandas", "matplotlib", "scipy", "sklearn", "torch", "jax", "numba")


def imported_after(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
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
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
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
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None" and not (tmp_path / "r.parquet").exists()
