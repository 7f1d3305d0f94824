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
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
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

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmdms.models', 'mmdms.export'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmdms.models'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, locations=['mmdms.models'])

# mmdms registers nothing here yet; the children exist so that configs with
# default_scope='mmdms' resolve datasets, metrics, ... through the parents without warnings.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS)
METRICS = Registry('metric', parent=MMENGINE_METRICS)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS)
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS)
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS)

# Per-module-class knowledge for export (attributes a forward reads, e.g. C2f split sizes).
PRUNING_ADAPTERS = Registry('pruning adapter', locations=['mmdms.export'])

# Masked forwards for modules whose own statistics span channels (ConvNeXt-V2's GRN): the
# tracer accepts their channel reductions, the mutator installs the forward by class name.
MASKED_FORWARDS = Registry('masked forward', locations=['mmdms.models.mutators'])
# Equivalent forwards for modules whose own forward sizes a reshape by its input's width
# (``reshape(B, N, C)`` after attention): installed before tracing and on export.
FORWARD_REWRITES = Registry('forward rewrite', locations=['mmdms.export'])
