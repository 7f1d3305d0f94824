from .budget import (BudgetError, resource_ratio, round_to_divisor, round_to_multiples,
                     scale_to_budget, set_kept_counts)
from .dms_mutator import DMSMutator
from .masked_forwards import masked_grn, masked_hornet_layer_norm

__all__ = ['DMSMutator', 'BudgetError', 'scale_to_budget', 'set_kept_counts',
           'round_to_divisor', 'round_to_multiples', 'resource_ratio', 'masked_grn',
           'masked_hornet_layer_norm']
