"""Differentiable FLOPs and parameter counts of a masked supernet.

Every traced op contributes ``coef * prod(effective channel counts) * prod(block masks)``,
where an effective count is ``sum(mask)`` over the channels of one factor. A straight-through
estimator makes the *value* the hard count (``m >= 0.5``) and the *gradient* that of the soft
sum, so the resource loss sees the true size of the model while still moving every ratio.
"""
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn


def straight_through_sum(soft: Tensor) -> Tensor:
    """Value: number of elements with ``soft >= 0.5``; gradient: that of ``soft.sum()``."""
    total = soft.sum()
    hard = (soft.detach() >= 0.5).to(soft.dtype).sum()
    return hard + (total - total.detach())


class ResourceModel(nn.Module):
    """FLOPs and params as functions of the unit masks.

    Args:
        compute_sites: :class:`~mmdms.models.tracing.ComputeSite` list from the trace.
        param_terms: ``(numel_per_channel_product, factor index tensors, enclosing blocks)``
            per parameter, from the trace's slots.
        gather: maps channel nodes to an index into the flat mask vector (see the mutator).
        block_of: module name -> (block unit index, element) for removable blocks.
    """

    def __init__(self, compute_terms: List[tuple], param_terms: List[tuple]):
        super().__init__()
        self.compute_terms = compute_terms
        self.param_terms = param_terms

    @staticmethod
    def _evaluate(terms: Sequence[tuple], flat: Tensor, blocks: List[Tensor],
                  hard: bool) -> Tensor:
        total = flat.new_zeros(())
        for coef, indices, block_refs in terms:
            value = flat.new_tensor(coef)
            for index in indices:
                gathered = flat[index.to(flat.device)]
                value = value * (gathered.detach().ge(0.5).to(flat.dtype).sum() if hard else
                                 straight_through_sum(gathered))
            for unit_idx, element in block_refs:
                m = blocks[unit_idx][element]
                value = value * (m.detach().ge(0.5).to(flat.dtype) if hard else
                                 (m.detach().ge(0.5).to(flat.dtype) + m - m.detach()))
            total = total + value
        return total

    def forward(self, flat: Tensor, blocks: List[Tensor], hard: bool = False) -> Dict[str, Tensor]:
        return dict(
            flops=self._evaluate(self.compute_terms, flat, blocks, hard),
            params=self._evaluate(self.param_terms, flat, blocks, hard))


def build_terms(trace, gather_index: Callable[[Tensor], Tensor], block_of: Dict[str, tuple],
                model: nn.Module) -> tuple:
    """Translate the trace into ``(coef, [flat-mask indices], [block refs])`` terms."""

    def blocks_for(names: Sequence[str]) -> List[tuple]:
        return [block_of[n] for n in names if n in block_of]

    compute = []
    for site in trace.compute:
        indices = [gather_index(f) for f in site.factors]
        if site.head_factor is not None:
            # one position per head: the head's mask is that of any of its channels
            indices.append(torch.stack([gather_index(nodes[:1])[0] for nodes in site.head_factor]))
        compute.append((site.coef, indices, blocks_for(site.enclosing)))

    slots_by_param: Dict[str, list] = {}
    for slot in trace.slots:
        slots_by_param.setdefault(slot.name, []).append(slot)
    params = []
    for name, p in model.named_parameters():
        slots = slots_by_param.get(name, [])
        per_product = p.numel()
        for slot in slots:
            per_product //= p.shape[slot.dim]
        parts = name.split('.')
        enclosing = ['.'.join(parts[:i]) for i in range(1, len(parts))]
        params.append((per_product, [gather_index(s.nodes) for s in slots], blocks_for(enclosing)))
    return compute, params
