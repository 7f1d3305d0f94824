from .hooks import SaveInitWeightsHook
from .search_loop import EvolutionSearchLoop

__all__ = ['SaveInitWeightsHook', 'EvolutionSearchLoop']
