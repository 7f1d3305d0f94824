"""Per-element rankings of width units: L1 norms of the producing weights, or positions.

A width unit (one :class:`~mmdms.models.tracing.groups.ChannelGroup`) can be produced by
several layers at once -- e.g. every conv whose output is added into the same residual
stream. The trace records each parameter dimension that *creates* channels as a ``producer``
slot (``slot.name`` the parameter, ``slot.dim`` its channel dimension, ``slot.nodes`` one
union-find node per index). ``graph.roots(slot.nodes)`` gives each index's root, and
``graph.element_of_root[root] = (unit, element)`` says which element of which unit it is.
The L1 importance of an element is the sum, over all producers of its unit, of the L1 norm of
the weight slice that produces it (Li et al., "Pruning Filters for Efficient ConvNets", 2017,
extended to coupled channels by summing). Biases and normalisation layers are not producers
and do not count.
"""
from typing import Dict, Mapping, Optional

import torch
from torch import Tensor


def _kept_indices(structure: Optional[dict], name: str, dim: int, size: int) -> Tensor:
    """Supernet indices of the rows a (possibly pruned) tensor holds along ``dim``."""
    entry = (structure or {}).get('slots', {}).get(name, {}).get(str(dim))
    if entry is None:
        return torch.arange(size)
    if entry['size'] != size:
        raise ValueError(f'{name!r} dim {dim}: the structure says the supernet has '
                         f'{entry["size"]} channels, the trace says {size}')
    return torch.tensor(entry['kept'], dtype=torch.long)


@torch.no_grad()
def l1_channel_norms(mutator, state_dict: Mapping[str, Tensor],
                     structure: Optional[dict] = None,
                     prefix: str = '') -> Dict[int, Tensor]:
    """L1 norm of the weights producing each element of each channel unit.

    Args:
        mutator: a prepared :class:`DMSMutator` of the *supernet* (it supplies the graph).
        state_dict: weights to measure, keyed like the traced model's parameters (with
            ``prefix`` prepended). They may belong to a model already pruned to
            ``structure``; elements pruned away then get norm 0.
        structure: the structure ``state_dict``'s model was pruned to (``None``: unpruned).
        prefix: prefix of the traced model's names inside ``state_dict`` (e.g.
            ``'architecture.'`` for a DMSAlgorithm checkpoint).

    Returns:
        ``{unit index in mutator.units: tensor of N_unit norms}`` for every channel unit.
    """
    graph = mutator.graph
    norms = {i: torch.zeros(unit.num_elements, dtype=torch.float64)
             for i, unit in enumerate(mutator.channel_units)}
    for slot in graph.trace.slots:
        if slot.role != 'producer':
            continue
        key = prefix + slot.name
        if key not in state_dict:
            raise KeyError(f'producer {slot.name!r} is not in the state dict (prefix '
                           f'{prefix!r}); is it the traced model\'s?')
        weight = state_dict[key].detach().to(torch.float64)
        rows = weight.abs().transpose(0, slot.dim).reshape(weight.shape[slot.dim], -1).sum(1)
        kept = _kept_indices(structure, slot.name, slot.dim, slot.nodes.numel())
        if kept.numel() != rows.numel():
            raise ValueError(f'{slot.name!r} has {rows.numel()} channels along dim {slot.dim}, '
                             f'the structure keeps {kept.numel()}')
        roots = graph.roots(slot.nodes[kept]).tolist()
        for row, root in zip(rows.tolist(), roots):
            element = graph.element_of_root.get(root)
            if element is not None:  # frozen channels (e.g. the logits) belong to no unit
                norms[element[0]][element[1]] += row
    return norms


def strict_ranking(scores: Tensor) -> Tensor:
    """Ranks ``N-1 .. 0`` (higher = more important) with ties broken by position: of two
    equal scores the earlier element ranks higher. Unit top-k needs a strict order."""
    order = sorted(range(scores.numel()), key=lambda i: (-float(scores[i]), i))
    ranks = torch.empty(scores.numel(), dtype=torch.float32)
    for rank, i in enumerate(order):
        ranks[i] = scores.numel() - 1 - rank
    return ranks


def descending_positions(mutator) -> Dict[int, Tensor]:
    """``N, N-1, ..., 1`` for every channel unit: the first-k channels stay (uniform scaling)."""
    return {i: torch.arange(unit.num_elements, 0, -1, dtype=torch.float32)
            for i, unit in enumerate(mutator.channel_units)}
