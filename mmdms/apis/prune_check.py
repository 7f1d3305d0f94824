"""``prune_check``: trace, prune at random, export, and prove the export equals the masked model."""
import copy
import time
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from mmdms.analysis import count_complexity
from mmdms.export import apply_structure
from mmdms.models.mutators import DMSMutator


def default_call(model: nn.Module) -> Callable[[nn.Module, Any], Any]:
    """MMEngine models run in ``tensor`` mode (raw network outputs); plain modules as is."""
    from mmengine.model import BaseModel
    if isinstance(model, BaseModel):
        return lambda m, x: m(x, mode='tensor')
    return lambda m, x: m(x)


def _output_tensors(outputs) -> list:
    leaves, _ = tree_flatten(outputs)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def max_abs_diff(a, b) -> float:
    """Largest absolute difference over all output tensors (shapes must match)."""
    ta, tb = _output_tensors(a), _output_tensors(b)
    if len(ta) != len(tb):
        raise AssertionError(f'{len(ta)} output tensors vs {len(tb)}')
    diff = 0.0
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            raise AssertionError(f'output shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}')
        if x.numel():
            diff = max(diff, float((x.float() - y.float()).abs().max()))
    return diff


@torch.no_grad()
def randomize_norm_layers(model: nn.Module, seed: int = 0) -> None:
    """Give BatchNorm/LayerNorm/GroupNorm random statistics and affine parameters.

    Freshly initialised networks often have near-constant outputs (activations vanish with
    depth), which would make "pruned equals masked" true for the wrong reason.
    """
    g = torch.Generator().manual_seed(seed)

    def rand_like(t, low, high):
        return (torch.rand(t.shape, generator=g) * (high - low) + low).to(t)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats \
                and m.running_mean is not None:
            m.running_mean.copy_(rand_like(m.running_mean, -0.1, 0.1))
            m.running_var.copy_(rand_like(m.running_var, 0.5, 1.5))
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            if getattr(m, 'weight', None) is not None:
                m.weight.copy_(rand_like(m.weight, 0.5, 1.5))
            if getattr(m, 'bias', None) is not None:
                m.bias.copy_(rand_like(m.bias, -0.1, 0.1))


def prune_check(model: nn.Module,
                example_inputs: Any,
                keep_ratio: float = 0.5,
                seed: int = 0,
                call: Optional[Callable[[nn.Module, Any], Any]] = None,
                randomize_norms: bool = True) -> dict:
    """Trace ``model``, keep ~``keep_ratio`` of every unit at random, export, and compare.

    Each width unit keeps ``round(keep_ratio * N)`` (>= 1) random channels; each depth unit
    keeps ``round(keep_ratio * N)`` random blocks. The hard-masked supernet and the exported
    model (built from the original by :func:`apply_structure`, no re-tracing) run on
    ``example_inputs``; their outputs must agree.

    Returns:
        dict with ``num_channel_units``, ``num_block_units``, ``num_head_units``, ``frozen``
        (reasons), ``max_abs_diff``, ``output_scale``, ``flops_ratio``, ``params_ratio``,
        ``structure`` and timings.

    ``randomize_norms`` first gives the (copied) model random normalisation statistics, see
    :func:`randomize_norm_layers`; the caller's model is never modified.
    """
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f'keep_ratio must be in (0, 1], got {keep_ratio}')
    call = call or default_call(model)
    original = copy.deepcopy(model)
    original.eval()
    if randomize_norms:
        randomize_norm_layers(original, seed)
    supernet = copy.deepcopy(original)
    start = time.time()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(supernet, lambda: call(supernet, example_inputs))
    trace_seconds = time.time() - start
    generator = torch.Generator().manual_seed(seed)
    for unit in mutator.units:
        importance = torch.rand(unit.num_elements, generator=generator)
        kept = max(unit.min_kept, round(keep_ratio * unit.num_elements))
        unit.keep(kept, importance)
    mutator.set_mode('hard')
    with torch.no_grad():
        masked_out = call(supernet, example_inputs)
        reference_out = call(original, example_inputs)
    structure = mutator.structure()
    exported = apply_structure(copy.deepcopy(original), structure)
    exported.eval()
    with torch.no_grad():
        exported_out = call(exported, example_inputs)
    before = count_complexity(original, example_inputs, call)
    after = count_complexity(exported, example_inputs, call)
    scale = max((float(t.abs().max()) for t in _output_tensors(masked_out) if t.numel()),
                default=0.0)
    return dict(
        num_channel_units=len(mutator.channel_units),
        num_block_units=len(mutator.block_units),
        num_head_units=len(mutator.head_units),
        frozen=[f['reason'] for f in mutator.graph.frozen_report()],
        max_abs_diff=max_abs_diff(masked_out, exported_out),
        output_scale=scale,
        unpruned_diff=max_abs_diff(reference_out, masked_out),
        flops_ratio=after['flops'] / before['flops'],
        params_ratio=after['params'] / before['params'],
        flops=(before['flops'], after['flops']),
        params=(before['params'], after['params']),
        structure=structure,
        trace_seconds=trace_seconds,
        seconds=time.time() - start,
        unit_table=mutator.unit_table())
