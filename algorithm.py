"""Algorithm 2 lives in memlab/algorithm.py (so an installed memlab has it); this shim keeps
`import algorithm` working from the repository, as the same module object.

    python run.py --name moons      # "trial": "algorithm" runs memlab.algorithm.trial
"""
import sys

import memlab.algorithm

sys.modules[__name__] = memlab.algorithm
