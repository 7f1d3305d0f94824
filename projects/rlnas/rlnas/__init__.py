"""RLNAS: one-shot NAS with random labels, ranked by the angle metric (Zhang et al., CVPR 2021).

Importing this package registers every module (configs do it through ``custom_imports``).
"""
from . import datasets, engine, models  # noqa: F401
from .registry import DATASETS, HOOKS, LOOPS, MODELS

__all__ = ['DATASETS', 'HOOKS', 'LOOPS', 'MODELS']
