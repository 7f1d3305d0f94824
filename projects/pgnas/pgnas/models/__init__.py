from .candidates import (candidate_context, candidate_cost, candidate_seed,
                         candidate_to_structure, dropout_units, gated_convs, sample_candidate,
                         set_candidate, branch_costs)
from .classifier import PGNASClassifier
from .concrete_dropout import ConcreteDropout, concrete_dropout_kl
from .mixed_conv import DEFAULT_BRANCHES, MixedConv, MixedConvBranch
from .supnet_r import MixedBasicBlock, SupNetR

__all__ = [
    'ConcreteDropout', 'concrete_dropout_kl', 'MixedConv', 'MixedConvBranch', 'DEFAULT_BRANCHES',
    'MixedBasicBlock', 'SupNetR', 'PGNASClassifier', 'dropout_units', 'gated_convs',
    'candidate_seed', 'sample_candidate', 'set_candidate', 'candidate_context',
    'candidate_to_structure', 'branch_costs', 'candidate_cost'
]
