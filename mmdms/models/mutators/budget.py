"""Fit a mutator's kept counts to a resource budget (``--target-flops``, baselines).

The search ends near its target, but users ask for an exact budget, hardware-friendly widths
(multiples of 8) or a baseline at the same FLOPs (uniform width, L1-magnitude pruning). All of
these are one operation: scale every width unit's kept count by a common factor ``s``, round,
and find the ``s`` whose *hard* resource count (the exported model's, see
:class:`~mmdms.models.mutators.resource_model.ResourceModel`) lands on the target.
Which elements stay inside a unit is still decided by its importance ranking.
"""
import math
from typing import Dict, List, Optional

import torch
from torch import Tensor

from mmdms.models.units import DTopkChannelUnit, DTopkHeadUnit


class BudgetError(ValueError):
    """The requested budget cannot be reached or is not a valid ratio."""


def round_to_divisor(count: float, num_elements: int, divisor: int = 1,
                     min_kept: int = 1) -> int:
    """Nearest multiple of ``divisor`` (halves up), clipped to ``[min_kept, num_elements]``.

    A unit smaller than ``divisor`` keeps all its elements (it cannot become a multiple), and
    rounding never goes below one ``divisor`` so a unit is not shrunk to a 1-channel layer.
    """
    if divisor > 1:
        if num_elements <= divisor:
            return num_elements
        count = max(divisor, divisor * math.floor(count / divisor + 0.5))
    else:
        count = math.floor(count + 0.5)
    return int(min(num_elements, max(min_kept, count)))


def kept_counts(mutator) -> Dict[int, int]:
    """Current hard kept count of every unit, by position in ``mutator.units``."""
    return {i: unit.num_kept() for i, unit in enumerate(mutator.units)}


def set_kept_counts(mutator, counts: Dict[int, int],
                    importance: Optional[Dict[int, Tensor]] = None) -> None:
    """Make unit ``i`` keep exactly ``counts[i]`` elements (optionally new importance first).

    Raises if the importance ranking has ties that prevent an exact count (e.g. a freshly
    initialised unit), naming the unit, instead of silently keeping more.
    """
    units = mutator.units
    for i, count in counts.items():
        unit = units[i]
        unit.keep(count, None if importance is None else importance.get(i))
        if unit.num_kept() != count:
            raise BudgetError(
                f'unit {i} ({type(unit).__name__}, {unit.num_elements} elements) keeps '
                f'{unit.num_kept()} instead of {count}: its importance has ties; pass a '
                'strict ranking (e.g. L1 norms, or descending positions for uniform scaling)')


def round_to_multiples(mutator, divisor: int) -> Dict[int, int]:
    """Round every width unit's kept count to a multiple of ``divisor`` (no budget)."""
    counts = {i: round_to_divisor(mutator.units[i].num_kept(), mutator.units[i].num_elements,
                                  divisor, mutator.units[i].min_kept)
              for i in _scalable(mutator, scale_heads=False)}
    set_kept_counts(mutator, counts)
    return counts


@torch.no_grad()
def resource_ratio(mutator, resource: str = 'flops') -> float:
    """Hard resource of the current masks as a fraction of the unpruned supernet's."""
    return float(mutator.resources(hard=True)[resource]) / mutator.original_resources[resource]


def _scalable(mutator, scale_heads: bool) -> List[int]:
    kinds = (DTopkChannelUnit, DTopkHeadUnit) if scale_heads else (DTopkChannelUnit, )
    return [i for i, u in enumerate(mutator.units) if isinstance(u, kinds)]


def scale_to_budget(mutator,
                    target_ratio: float,
                    resource: str = 'flops',
                    base_counts: Optional[Dict[int, int]] = None,
                    importance: Optional[Dict[int, Tensor]] = None,
                    divisor: int = 1,
                    tolerance: float = 0.01,
                    scale_heads: bool = False,
                    max_refine_steps: int = 500) -> dict:
    """Scale width units by a common factor so ``resource`` is ``target_ratio`` of the supernet.

    Args:
        mutator: a prepared :class:`DMSMutator`.
        target_ratio: budget as a fraction of the unpruned supernet's resource.
        base_counts: kept count per unit index to scale (default: the current structure;
            pass ``num_elements`` everywhere for uniform scaling of the full supernet).
        importance: optional new importance per unit index (e.g. L1 norms).
        divisor: round width units' kept counts to multiples of it (8 for most hardware).
        tolerance: accepted relative error of the reached ratio.
        scale_heads: also scale attention-head units (default: keep the searched heads).
        max_refine_steps: after the common-factor search, single-unit steps of ``divisor``
            that move the count closer to the target (rounding makes the factor too coarse
            for small models).

    Returns:
        dict with ``scale``, ``ratio`` (reached), ``target_ratio``, ``within_tolerance``
        and ``counts`` (unit index -> kept). Block (depth) units keep their current depth.
    """
    if not 0.0 < target_ratio <= 1.0:
        raise BudgetError(f'target ratio must be in (0, 1], got {target_ratio}: it is the '
                          f'fraction of the supernet\'s {resource} to keep')
    if divisor < 1:
        raise BudgetError(f'divisor must be >= 1, got {divisor}')
    units = mutator.units
    base = dict(kept_counts(mutator) if base_counts is None else base_counts)
    scalable = _scalable(mutator, scale_heads)
    if not scalable:
        raise BudgetError('the model has no width unit to scale')
    if importance:
        set_kept_counts(mutator, {i: base[i] for i in importance}, importance)

    def counts_at(scale: float) -> Dict[int, int]:
        counts = dict(base)
        for i in scalable:
            unit = units[i]
            step = divisor if isinstance(unit, DTopkChannelUnit) else 1
            counts[i] = round_to_divisor(scale * base[i], unit.num_elements, step,
                                         unit.min_kept)
        return counts

    def ratio_at(counts: Dict[int, int]) -> float:
        set_kept_counts(mutator, counts)
        return resource_ratio(mutator, resource)

    low, high = 0.0, max(units[i].num_elements / max(base[i], 1) for i in scalable)
    smallest = ratio_at(counts_at(low))
    if smallest > target_ratio * (1 + tolerance):
        raise BudgetError(f'the smallest model this structure scales to has {resource} ratio '
                          f'{smallest:.4f} > target {target_ratio}')
    best = None
    for _ in range(60):  # bisection over the common factor; the ratio is monotone in it
        mid = 0.5 * (low + high)
        counts = counts_at(mid)
        ratio = ratio_at(counts)
        if best is None or abs(ratio - target_ratio) < abs(best[1] - target_ratio):
            best = (mid, ratio, counts)
        if ratio > target_ratio:
            high = mid
        else:
            low = mid
        if high - low < 1e-6:
            break
    scale, ratio, counts = best
    counts = _refine(counts, ratio, target_ratio, tolerance, scalable, units, divisor,
                     ratio_at, max_refine_steps)
    ratio = ratio_at(counts)
    return dict(scale=scale, ratio=ratio, target_ratio=target_ratio, counts=counts,
                within_tolerance=abs(ratio / target_ratio - 1) <= tolerance)


def _refine(counts, ratio, target, tolerance, scalable, units, divisor, ratio_at, max_steps):
    """Greedy single-unit steps toward the target: each step takes the move (one unit up or
    down by its rounding step) that lands closest to the target, until within tolerance."""
    for _ in range(max_steps):
        if abs(ratio / target - 1) <= tolerance:
            break
        direction = 1 if ratio < target else -1
        best = None
        for i in scalable:
            unit = units[i]
            step = divisor if isinstance(unit, DTopkChannelUnit) and \
                unit.num_elements > divisor else 1
            new = counts[i] + direction * step
            if not max(unit.min_kept, step) <= new <= unit.num_elements:
                continue
            trial = dict(counts)
            trial[i] = new
            trial_ratio = ratio_at(trial)
            if best is None or abs(trial_ratio - target) < abs(best[1] - target):
                best = (trial, trial_ratio)
        if best is None or abs(best[1] - target) >= abs(ratio - target):
            break
        counts, ratio = best
    return counts
