"""Kernels behind algorithm.py (Algorithm 2 of arXiv 2310.00327).

    first_layer.py   random first layer: weights, canonical outputs (packed bits or quantized floats)
    oracle.py        the plain, line-by-line Algorithm 2 the tests check everything against
    fast.py          the CPU fast path: numba popcount kernels (threshold), block products (ReLU)
    kernels.py       every numba kernel, compiled once and cached on disk (see cache_dir)
    torch_path.py    the same block algorithm in PyTorch, for GPUs (device="cuda")

numba's on-disk cache goes to $NUMBA_CACHE_DIR; where that is unset, memlab sets it to
$XDG_CACHE_HOME/memlab/numba (default ~/.cache/memlab/numba) before the kernels are defined,
so compiled kernels are reused by every process, also where the code folder is read-only (a
cluster's shared checkout).  numba keys the cache by the source file's path and time stamp,
so two checkouts or an edited file never share stale machine code.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """Where numba keeps the compiled kernels (NUMBA_CACHE_DIR, set here when unset)."""
    return Path(os.environ["NUMBA_CACHE_DIR"])


if not os.environ.get("NUMBA_CACHE_DIR"):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "memlab", "numba")
    if "numba" in sys.modules:             # imported earlier: its configuration was read then
        from numba.core import config as _numba_config
        _numba_config.reload_config()
