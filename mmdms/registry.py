"""Registries of mmdms, children of MMEngine's root registries.

Every registry names the package ``locations`` that hold its members, so a config with
``default_scope='mmdms'`` finds ``type='DMSAlgorithm'`` without anyone importing mmdms
modules for their side effects first.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as \
    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['mmdms.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmdms.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmdms.engine'])
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmdms.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmdms.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['mmdms.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['mmdms.engine'])

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmdms.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmdms.models'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, locations=['mmdms.models'])

# Per-module-class knowledge for export (attributes a forward reads, e.g. C2f split sizes).
PRUNING_ADAPTERS = Registry('pruning adapter', locations=['mmdms.export'])
