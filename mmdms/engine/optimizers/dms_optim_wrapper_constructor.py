"""Two optimizers for DMS: the wrapped model's weights and the structure (ratio) parameters."""
import copy
import warnings

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from mmdms.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DMSOptimWrapperConstructor:
    """Build ``OptimWrapperDict(architecture=..., mutator=...)``.

    The ``architecture`` entry is an ordinary optim wrapper config (``paramwise_cfg`` works as
    usual) for the wrapped model. The ``mutator`` entry optimises only the pruning ratios: its
    weight decay is forced to 0 and :class:`DMSSearchHook` keeps learning-rate schedulers away
    from it, so the structure learns at a constant rate (DMS uses Adam, lr 5e-3). Groups are
    identified by module, never by their learning rate.

    Example::

        optim_wrapper = dict(
            constructor='DMSOptimWrapperConstructor',
            architecture=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                             weight_decay=5e-4)),
            mutator=dict(optimizer=dict(type='Adam', lr=5e-3)))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        if paramwise_cfg is not None:
            raise ValueError('put paramwise_cfg inside optim_wrapper.architecture for DMS')
        unknown = set(optim_wrapper_cfg) - {'architecture', 'mutator'}
        if unknown or 'mutator' not in optim_wrapper_cfg:
            raise ValueError('DMSOptimWrapperConstructor expects the keys "architecture" and '
                             f'"mutator", got {sorted(optim_wrapper_cfg)}')
        self.cfg = copy.deepcopy(optim_wrapper_cfg)

    @staticmethod
    def _build(cfg: dict, module: nn.Module):
        """Build one wrapper; ``constructor`` picks another constructor (e.g. mmyolo's
        ``YOLOv5OptimizerConstructor``) exactly as in a plain ``optim_wrapper``."""
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('type', 'OptimWrapper')
        paramwise_cfg = cfg.pop('paramwise_cfg', None)
        constructor = cfg.pop('constructor', None)
        if constructor is None:
            return DefaultOptimWrapperConstructor(cfg, paramwise_cfg)(module)
        from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT
        built = ROOT.build(dict(type=constructor, optim_wrapper_cfg=cfg,
                                paramwise_cfg=paramwise_cfg))
        return built(module)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if hasattr(model, 'module'):
            model = model.module
        if not hasattr(model, 'mutator') or not hasattr(model, 'architecture'):
            raise TypeError('DMSOptimWrapperConstructor needs a DMSAlgorithm-like model with '
                            f'"architecture" and "mutator", got {type(model).__name__}')
        mutator_cfg = copy.deepcopy(self.cfg['mutator'])
        optimizer = mutator_cfg.setdefault('optimizer', dict(type='Adam', lr=5e-3))
        if optimizer.get('weight_decay', 0):
            warnings.warn('weight decay on DMS ratios pulls them towards 0 (no pruning); '
                          'it is set to 0')
        optimizer['weight_decay'] = 0.0
        wrappers = dict(mutator=self._build(mutator_cfg, model.mutator))
        if 'architecture' in self.cfg:
            wrappers['architecture'] = self._build(self.cfg['architecture'], model.architecture)
        return OptimWrapperDict(**wrappers)
