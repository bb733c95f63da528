"""Materialize named datasets into datasets/NAME.npz.

    python data.py                              # the default (offline) datasets
    python data.py --name mnist cifar10         # only these (download, verify, cache)
    python data.py --name mnist --source DIR    # from already-downloaded archives in DIR
    python data.py --list                       # every name, its shape, whether it is there
"""
import sys

from memlab.cli.data import main

if __name__ == "__main__":
    sys.exit(main())
