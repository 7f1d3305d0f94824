"""Registries of the PGNAS project: children of MMEngine's root registries, scope ``pgnas``.

Configs name project types with the scope prefix (``type='pgnas.PGNASClassifier'``) and keep
``default_scope='mmpretrain'`` for everything else, so the project never collides with names
registered by mmdms or other projects. (MMEngine resolves a ``scope.Name`` only among the
root's direct children, hence MMEngine's registries as parents rather than mmdms's.)
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

_LOCATIONS = ['projects.pgnas.pgnas']

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='pgnas', locations=_LOCATIONS)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='pgnas', locations=_LOCATIONS)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='pgnas', locations=_LOCATIONS)
