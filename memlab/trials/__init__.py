"""Trials that train networks: `sgd` (Zhang et al.'s experiments), and the lecture's others.

A trial module here is named by its short name in an experiment file ("trial": "sgd"); see
memlab.config.TRIALS.  Shared training machinery: _train (framework-free), _torch, _jax.
"""
