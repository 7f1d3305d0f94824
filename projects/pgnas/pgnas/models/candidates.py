"""Candidates: one fixed binary keep mask per concrete-dropout unit.

A candidate is a dict ``{unit_name: BoolTensor(C)}`` keyed by the unit's module name in the
model (``backbone.layer1.0.conv1.branches.k3.dropout``). It is drawn from one CPU generator
seeded with :func:`candidate_seed`, so candidate ``i`` of a search is reproducible alone.
"""
import contextlib
from collections import OrderedDict
from typing import Dict, Optional

import torch
from torch import nn

from mmdms.export.structure import STRUCTURE_VERSION

from .concrete_dropout import ConcreteDropout

Candidate = Dict[str, torch.Tensor]
_DROPOUT_SUFFIX = '.dropout'


def dropout_units(model: nn.Module) -> 'OrderedDict[str, ConcreteDropout]':
    """Every :class:`ConcreteDropout` of ``model`` in module order."""
    return OrderedDict((name, m) for name, m in model.named_modules()
                       if isinstance(m, ConcreteDropout))


def gated_convs(model: nn.Module) -> 'OrderedDict[str, tuple]':
    """``{unit_name: (unit, conv)}``: every dropout unit with the conv whose input it gates."""
    modules = dict(model.named_modules())
    return OrderedDict((name, (unit, modules[name[:-len(_DROPOUT_SUFFIX)]].conv))
                       for name, unit in dropout_units(model).items())


def candidate_seed(seed: int, index: int) -> int:
    """Seed of candidate ``index`` of a search seeded with ``seed`` (independent streams)."""
    return seed * 1_000_003 + index


def sample_candidate(model: nn.Module,
                     seed: int,
                     index: int = 0,
                     drop_rate: Optional[float] = None) -> Candidate:
    """Draw a candidate: each unit's channels kept with prob ``1 - p``.

    ``drop_rate=None`` samples from the learned posterior (PGNAS); a float is the same rate
    for every unit (uniform random predefined dropout, the baseline).
    """
    generator = torch.Generator().manual_seed(candidate_seed(seed, index))
    units = dropout_units(model)
    if not units:
        raise ValueError('the model has no ConcreteDropout unit to sample')
    with torch.no_grad():
        return OrderedDict((name, unit.sample_mask(generator, drop_rate))
                           for name, unit in units.items())


def set_candidate(model: nn.Module, candidate: Optional[Candidate]) -> None:
    """Fix every unit to the candidate's mask (``None`` clears all masks)."""
    units = dropout_units(model)
    if candidate is not None and set(candidate) != set(units):
        missing = sorted(set(units) - set(candidate))[:3]
        extra = sorted(set(candidate) - set(units))[:3]
        raise KeyError(f'candidate does not fit the model: missing {missing}, unknown {extra}')
    for name, unit in units.items():
        unit.set_mask(None if candidate is None else candidate[name])


@contextlib.contextmanager
def candidate_context(model: nn.Module, candidate: Candidate):
    """Run the model as the candidate inside the block, as the supernet after it."""
    set_candidate(model, candidate)
    try:
        yield model
    finally:
        set_candidate(model, None)


def _branch_name(unit_name: str, prefix: str) -> str:
    if not unit_name.endswith(_DROPOUT_SUFFIX) or not unit_name.startswith(prefix):
        raise ValueError(f'{unit_name!r} is not a branch gate under {prefix!r}')
    return unit_name[len(prefix):-len(_DROPOUT_SUFFIX)]


def candidate_to_structure(candidate: Candidate, prefix: str = 'backbone.') -> dict:
    """The mmdms pruning structure of the static backbone that equals the candidate.

    Per branch, ``conv.weight`` keeps its input channels (dim 1) and ``in_index`` (dim 0)
    the same indices; names are relative to the backbone (``prefix`` is stripped).
    """
    slots = {}
    for unit_name, mask in candidate.items():
        branch = _branch_name(unit_name, prefix)
        size = int(mask.numel())
        kept = [int(i) for i in torch.nonzero(mask.bool()).flatten().tolist()]
        slots[f'{branch}.conv.weight'] = {'1': {'size': size, 'kept': kept}}
        slots[f'{branch}.in_index'] = {'0': {'size': size, 'kept': list(kept)}}
    return {'version': STRUCTURE_VERSION, 'slots': slots, 'removed_blocks': []}


def branch_costs(model: nn.Module, input_shape=(1, 3, 32, 32)) -> Dict[str, int]:
    """Multiply-adds per kept input channel of every gated branch, from one traced forward.

    A candidate's searchable-conv cost is ``sum(cost[u] * mask[u].sum())``.
    """
    costs, handles = {}, []
    for unit_name, (_, conv) in gated_convs(model).items():

        def hook(module, args, output, unit_name=unit_name):
            k = module.kernel_size[0] * module.kernel_size[1]
            costs[unit_name] = int(output.shape[1] * output.shape[2] * output.shape[3] * k)

        handles.append(conv.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros(input_shape, device=param.device, dtype=param.dtype),
                  mode='tensor')
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return costs


def candidate_cost(candidate: Candidate, costs: Dict[str, int]) -> int:
    """Searchable-conv multiply-adds of a candidate (see :func:`branch_costs`)."""
    return int(sum(costs[name] * int(mask.sum()) for name, mask in candidate.items()))
