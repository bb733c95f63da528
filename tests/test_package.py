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
