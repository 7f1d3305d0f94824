from .angle import (LayerwiseAngleScorer, angle_between, arch_vector, candidate_angle,
                    load_models_for_angle)
from .complexity import LayerwiseComplexity
from .evolution import EvolutionSearcher
from .one_shot import OneShotEvaluator, collect_batches

__all__ = [
    'angle_between', 'arch_vector', 'candidate_angle', 'LayerwiseAngleScorer',
    'load_models_for_angle', 'LayerwiseComplexity', 'EvolutionSearcher', 'OneShotEvaluator',
    'collect_batches'
]
