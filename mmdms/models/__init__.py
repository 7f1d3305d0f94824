"""Models of mmdms: the top-k operators, prunable units, tracing, mutators and algorithms."""
from . import ops  # noqa: F401
from .algorithms import DMSAlgorithm, DMSDistributedDataParallel
from .mutators import DMSMutator
from .units import DTopkBlockUnit, DTopkChannelUnit, DTopkHeadUnit, DTopkUnit

__all__ = [
    'ops', 'DMSAlgorithm', 'DMSDistributedDataParallel', 'DMSMutator', 'DTopkUnit',
    'DTopkChannelUnit', 'DTopkBlockUnit', 'DTopkHeadUnit'
]
