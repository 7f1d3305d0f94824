"""Structures at a FLOPs budget from a common width factor: uniform and L1-magnitude.

Every function works on a prepared :class:`DMSMutator` of the supernet (e.g.
``DMSAlgorithm(...).mutator``), sets its hard masks and returns the structure dict of
:meth:`DMSMutator.structure` (supernet coordinates, JSON data).
"""
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from mmdms.models.mutators import BudgetError, scale_to_budget
from .importance import descending_positions, l1_channel_norms, strict_ranking


def full_counts(mutator) -> Dict[int, int]:
    """Every unit at its full size (the supernet): the base a common factor scales."""
    return {i: unit.num_elements for i, unit in enumerate(mutator.units)}


def budget_structure(mutator, target_ratio: float, importance: Dict[int, Tensor],
                     tolerance: float = 0.01, divisor: int = 1) -> Tuple[dict, dict]:
    """Scale all width units of the supernet by one factor to ``target_ratio`` of its FLOPs,
    keeping in each unit the elements ranked highest by ``importance``.

    Returns ``(structure, report)``; ``report`` is :func:`scale_to_budget`'s (``ratio``,
    ``scale``, ``counts``, ...). Raises :class:`BudgetError` if the budget is missed by more
    than ``tolerance``.
    """
    mutator.set_mode('hard')
    report = scale_to_budget(mutator, target_ratio, 'flops', base_counts=full_counts(mutator),
                             importance=importance, divisor=divisor, tolerance=tolerance)
    if not report['within_tolerance']:
        raise BudgetError(f'common width factor reached FLOPs ratio {report["ratio"]:.4f}, '
                          f'not {target_ratio} within {tolerance:.0%}')
    return mutator.structure(), report


def uniform_structure(mutator, target_ratio: float, **kwargs) -> Tuple[dict, dict]:
    """Uniform width scaling: the first ``round(s * N)`` channels of every unit."""
    return budget_structure(mutator, target_ratio, descending_positions(mutator), **kwargs)


def magnitude_structure(mutator, target_ratio: float, state_dict: Mapping[str, Tensor],
                        previous: Optional[dict] = None, prefix: str = '',
                        **kwargs) -> Tuple[dict, dict]:
    """L1-magnitude pruning to a common keep factor of the supernet's widths.

    ``state_dict`` holds the current weights, of the supernet or of a model already pruned
    to ``previous`` (iterative pruning): channels pruned before have norm 0 and rank below
    every surviving one, so the new kept set is a subset of the previous one as long as the
    budget shrinks. Raises ``ValueError`` if it is not (the weights could not be carried over).
    """
    norms = l1_channel_norms(mutator, state_dict, previous, prefix)
    importance = {i: strict_ranking(n) for i, n in norms.items()}
    structure, report = budget_structure(mutator, target_ratio, importance, **kwargs)
    if previous is not None:
        check_nested(previous, structure)
    report['l1_norms'] = {i: n.tolist() for i, n in norms.items()}
    return structure, report


def check_nested(previous: dict, structure: dict) -> None:
    """Every channel ``structure`` keeps must have been kept by ``previous`` too."""
    for name, dims in structure['slots'].items():
        for dim, entry in dims.items():
            before = previous['slots'].get(name, {}).get(dim)
            if before is not None and not set(entry['kept']) <= set(before['kept']):
                grown = sorted(set(entry['kept']) - set(before['kept']))
                raise ValueError(f'{name!r} dim {dim}: the new structure keeps channels '
                                 f'{grown[:5]} that the previous step pruned')


def unit_widths(mutator) -> List[dict]:
    """Per-unit ``{unit, kind, size, kept}`` of the current hard masks (for tables/plots)."""
    return [dict(unit=r['unit'], kind=r['kind'], size=r['size'], kept=r['kept'])
            for r in mutator.unit_table()]
