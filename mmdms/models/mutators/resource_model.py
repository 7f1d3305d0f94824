"""Differentiable FLOPs and parameter counts of a masked supernet.

Every traced op contributes ``coef * prod(effective channel counts) * prod(block masks)``,
where an effective count is ``sum(mask)`` over the channels of one factor. A straight-through
estimator makes the *value* the hard count (``m >= 0.5``) and the *gradient* that of the soft
sum, so the resource loss sees the true size of the model while still moving every ratio.
"""
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn


class _PackedTerms(nn.Module):
    """A list of ``(coef, [index tensors], [block refs])`` terms packed into flat tensors, so a
    whole resource count is a handful of vectorised ops instead of a Python loop per term.

    Every factor (an index set into the flat channel mask) becomes a segment of one long
    index; its effective count is a ``index_add`` of the gathered mask. Each term multiplies
    up to ``F`` factor counts and ``B`` block masks, gathered through padded index matrices
    whose padding points at a constant 1.
    """

    def __init__(self, terms: Sequence[tuple], block_offsets: List[int]):
        super().__init__()
        flat_index, segment, term_factors, term_blocks, coefs = [], [], [], [], []
        num_factors = 0
        for coef, indices, block_refs in terms:
            ids = []
            for index in indices:
                flat_index.append(index.long().flatten())
                segment.append(torch.full((index.numel(), ), num_factors, dtype=torch.long))
                ids.append(num_factors)
                num_factors += 1
            term_factors.append(ids)
            term_blocks.append([block_offsets[u] + e for u, e in block_refs])
            coefs.append(float(coef))
        self.num_factors = num_factors
        self.num_blocks = block_offsets[-1]
        self.register_buffer('flat_index', torch.cat(flat_index) if flat_index else
                             torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer('segment', torch.cat(segment) if segment else
                             torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer('factor_matrix', self._pad(term_factors, num_factors),
                             persistent=False)
        self.register_buffer('block_matrix', self._pad(term_blocks, self.num_blocks),
                             persistent=False)
        self.register_buffer('coefs', torch.tensor(coefs, dtype=torch.float64),
                             persistent=False)

    @staticmethod
    def _pad(rows: List[List[int]], pad_value: int) -> Tensor:
        width = max([len(r) for r in rows] + [1])
        return torch.tensor([r + [pad_value] * (width - len(r)) for r in rows] or [[pad_value]],
                            dtype=torch.long)[:len(rows)]

    def forward(self, flat: Tensor, block_flat: Tensor, hard: bool) -> Tensor:
        if not len(self.coefs):
            return flat.new_zeros((), dtype=torch.float64)
        gathered = flat[self.flat_index]
        kept = gathered.detach().ge(0.5).to(flat.dtype)
        counts = flat.new_zeros(self.num_factors).index_add_(0, self.segment, kept)
        blocks = block_flat.detach().ge(0.5).to(flat.dtype)
        if not hard:  # straight-through: value of the hard count, gradient of the soft sum
            soft = flat.new_zeros(self.num_factors).index_add_(0, self.segment, gathered)
            counts = counts + (soft - soft.detach())
            blocks = blocks + (block_flat - block_flat.detach())
        one = flat.new_ones(1)
        # float64 so counts of billions stay exact integers (hard counts equal mmengine's)
        factor_values = torch.cat([counts, one]).double()[self.factor_matrix].prod(dim=1)
        block_values = torch.cat([blocks, one]).double()[self.block_matrix].prod(dim=1)
        return (self.coefs * factor_values * block_values).sum()


class ResourceModel(nn.Module):
    """FLOPs and params as functions of the unit masks.

    Every term is ``coef * prod(effective channel counts) * prod(block masks)``; see
    :func:`build_terms` for how the trace becomes terms and :class:`_PackedTerms` for how
    they are evaluated.

    Args:
        compute_terms: ``(coef, factor index tensors, block refs)`` per traced op.
        param_terms: ``(numel_per_channel_product, factor index tensors, block refs)`` per
            parameter.
        block_sizes: number of elements of each block unit (block refs are
            ``(unit index, element)``).
    """

    def __init__(self, compute_terms: List[tuple], param_terms: List[tuple],
                 block_sizes: Sequence[int] = ()):
        super().__init__()
        offsets = [0]
        for size in block_sizes:
            offsets.append(offsets[-1] + size)
        self.flops = _PackedTerms(compute_terms, offsets)
        self.params = _PackedTerms(param_terms, offsets)

    def forward(self, flat: Tensor, blocks: List[Tensor], hard: bool = False) -> Dict[str, Tensor]:
        block_flat = torch.cat(list(blocks)) if len(blocks) else flat.new_zeros(0)
        return dict(flops=self.flops(flat, block_flat, hard),
                    params=self.params(flat, block_flat, hard))


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
