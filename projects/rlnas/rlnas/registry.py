"""Registries of the RLNAS project, children of MMEngine's root registries.

They use the explicit scope ``rlnas`` (the module path starts with ``projects``), so configs write
``type='rlnas.SPOSClassifier'`` whatever their ``default_scope`` is, and ``custom_imports`` of
``projects.rlnas.rlnas`` fills them.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='rlnas', locations=['projects.rlnas.rlnas.models'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='rlnas',
    locations=['projects.rlnas.rlnas.datasets'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='rlnas', locations=['projects.rlnas.rlnas.engine'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='rlnas', locations=['projects.rlnas.rlnas.engine'])
