"""PGNAS (Posterior-Guided NAS, Zhou et al., AAAI 2020) on MMEngine/mmpretrain.

Importing the package registers its models, dataset and search loop under the ``pgnas``
scope (see :mod:`.registry`).
"""
from . import datasets, engine, models  # noqa: F401
from .export import build_static_candidate, export_candidate

__all__ = ['datasets', 'engine', 'models', 'build_static_candidate', 'export_candidate']
