"""Per-candidate FLOPs and parameters of a chain-structured supernet, by table lookup.

FLOPs count multiply-accumulates of conv and linear layers only (NAS-Bench-Macro's convention,
checked to match its table exactly); parameters count everything (BN included). Both add up
over layers, so one forward per choice index fills a table and any candidate costs a sum.
"""
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import nn


def _module_flops(module: nn.Module, output: torch.Tensor) -> float:
    if isinstance(module, nn.Conv2d):
        per_out = module.in_channels // module.groups * module.kernel_size[0] * \
            module.kernel_size[1]
        return float(output[0].numel() * per_out)
    return float(module.in_features * module.out_features)  # nn.Linear, per sample


class LayerwiseComplexity:
    """FLOPs/params tables of an :class:`SPOSClassifier` supernet for one input size."""

    def __init__(self, model, input_shape: Tuple[int, int, int] = (3, 32, 32)):
        backbone = model.backbone
        self.num_choices = list(backbone.num_choices)
        self.fixed_flops = 0.0
        self.flops = [np.zeros(n) for n in self.num_choices]
        self.params = [np.zeros(n) for n in self.num_choices]
        layer_prefix = 'backbone.layers.'
        owner = {}  # module -> (layer, choice) or None for fixed
        for name, module in model.named_modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            if name.startswith(layer_prefix):
                layer, choice_name = name[len(layer_prefix):].split('.')[:2]
                layer = int(layer)
                owner[module] = (layer, backbone.choice_names[layer].index(choice_name))
            else:
                owner[module] = None
        for layer, names in enumerate(backbone.choice_names):
            for c, name in enumerate(names):
                if name in backbone.layers[layer]:
                    self.params[layer][c] = sum(
                        p.numel() for p in backbone.layers[layer][name].parameters())
        self.fixed_params = float(
            sum(p.numel() for n, p in model.named_parameters() if not n.startswith(layer_prefix)))

        records: Dict[nn.Module, float] = {}
        hooks = [m.register_forward_hook(
            lambda m, i, o: records.__setitem__(m, _module_flops(m, o))) for m in owner]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
                for c in range(max(self.num_choices)):
                    records.clear()
                    arch = tuple(min(c, n - 1) for n in self.num_choices)
                    model.logits(x, arch)
                    for module, flops in records.items():
                        if owner[module] is not None:
                            layer, choice = owner[module]
                            if choice == c:  # layers with fewer choices repeat their last one
                                self.flops[layer][choice] += flops
                # fixed modules run in every forward: take them from the last one
                self.fixed_flops = sum(f for m, f in records.items() if owner[m] is None)
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)

    def __call__(self, arch: Sequence[int]) -> Dict[str, float]:
        flops = self.fixed_flops + sum(self.flops[i][c] for i, c in enumerate(arch))
        params = self.fixed_params + sum(self.params[i][c] for i, c in enumerate(arch))
        return dict(flops=float(flops), params=float(params))
