"""Baselines for DMS at equal FLOPs: uniform width scaling and L1-magnitude channel pruning.

Both reuse the DMS machinery: a :class:`~mmdms.models.mutators.DMSMutator` traced on the
supernet names the width units, :func:`~mmdms.apis.scale_to_budget` finds the common width
factor that reaches a FLOPs budget, and the importance passed to it decides *which* channels
stay (first-k for uniform scaling, largest L1 norm for magnitude pruning). The result is a
structure in supernet coordinates, which :func:`mmdms.export.apply_structure` and the
``mmdms.PrunedModel`` builder turn into a model of the original classes.
"""
from .importance import descending_positions, l1_channel_norms, strict_ranking
from .schedule import OffsetCosineLR
from .structures import (budget_structure, full_counts, magnitude_structure, unit_widths,
                         uniform_structure)
from .transfer import transfer_state

__all__ = [
    'l1_channel_norms', 'strict_ranking', 'descending_positions', 'full_counts',
    'budget_structure', 'uniform_structure', 'magnitude_structure', 'unit_widths',
    'transfer_state', 'OffsetCosineLR'
]
