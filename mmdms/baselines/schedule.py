"""A cosine learning-rate schedule that continues a global one across training phases.

Pruning pipelines train in phases (supernet, prune, fine-tune, prune, ...), each its own
MMEngine run. For every arm of a comparison to follow the *same* learning-rate curve over its
total iterations, a phase that starts at global iteration ``offset`` of ``total`` uses

    lr(i) = eta_min + (lr_0 - eta_min) * (1 + cos(pi * min(offset + i, total) / total)) / 2

which for ``offset=0`` is MMEngine's ``CosineAnnealingLR(T_max=total)``.
"""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmdms.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class OffsetCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Cosine annealing over ``total`` iterations, entered at iteration ``offset``.

    Args:
        optimizer: wrapped optimizer.
        total: length of the global schedule (iterations).
        offset: global iteration at which this phase starts.
        eta_min: final learning rate.
    """

    def __init__(self, optimizer, total: int, offset: int = 0, eta_min: float = 0.0,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = False,
                 verbose: bool = False):
        if total <= 0 or not 0 <= offset <= total:
            raise ValueError(f'need total > 0 and 0 <= offset <= total, got offset={offset}, '
                             f'total={total}')
        self.total = total
        self.offset = offset
        self.eta_min = eta_min
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    def _get_value(self):
        t = min(self.offset + self.last_step, self.total)
        factor = (1 + math.cos(math.pi * t / self.total)) / 2
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_values]
