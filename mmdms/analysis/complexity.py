"""FLOPs and parameter counts via ``mmengine.analysis`` (jit-traced, per-op handles), with
attention counted too (mmengine leaves ``scaled_dot_product_attention`` out)."""
from typing import Any, Callable, Dict

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn


def _sdpa_flop_handle(inputs, outputs):
    """Multiply-adds of q @ k^T and attn @ v: B*h*Nq*Nk*(d_qk + d_v)."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = 1
    for size in q[:-2]:
        batch *= size
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


class _CallWrapper(nn.Module):
    """Lets the jit tracer call ``fn(model, inputs)`` (e.g. ``mode='tensor'``)."""

    def __init__(self, model: nn.Module, call: Callable[[nn.Module, Any], Any]):
        super().__init__()
        self.model = model
        self.call = call

    def forward(self, inputs):
        return self.call(self.model, inputs)


def count_complexity(model: nn.Module, inputs: Any,
                     call: Callable[[nn.Module, Any], Any] = None) -> Dict[str, float]:
    """Return ``dict(flops=..., params=...)`` for one forward of ``model`` on ``inputs``.

    FLOPs follow mmengine's convention (one multiply-add counts as one FLOP).
    """
    call = call or (lambda m, x: m(x))
    wrapper = _CallWrapper(model, call)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(wrapper, (inputs, ))
            analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_handle)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            flops = float(analyzer.total())
    finally:
        model.train(was_training)
    params = float(sum(p.numel() for p in model.parameters()))
    return dict(flops=flops, params=params)
