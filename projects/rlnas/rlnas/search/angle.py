"""The angle metric of ABS/RLNAS: how far a candidate's weights rotated during training.

V(a, W) concatenates, in a fixed order, the flattened tensors along candidate ``a``'s path: the
fixed layers (stem, head conv, classifier) and the chosen op of every searchable layer. Weighted
ops contribute their conv/linear weights (BN excluded, as in the official RLNAS code); weight-free
ops contribute the fixed tensor of their linear map (identity -> I_C as a 1x1 kernel, average
pooling -> 1/K^2), identical at W0 and Wt, and 'none' contributes nothing. In a chain-structured
space a candidate has one path, so ABS's product over a path's edges reduces to this
concatenation (the official RLNAS code for its MobileNet space does the same, leaving skips out).

theta(a) = arccos(<V0, Vt> / (|V0| |Vt|)); larger is better.
"""
import math
from typing import Dict, Iterable, List, Sequence

import numpy as np
import torch


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([t.detach().reshape(-1).double().cpu() for t in tensors])


def angle_between(v0: torch.Tensor, vt: torch.Tensor) -> float:
    """arccos of the cosine similarity (float64, clamped to [-1, 1]); 0 for parallel vectors."""
    v0, vt = v0.double().reshape(-1), vt.double().reshape(-1)
    if v0.shape != vt.shape:
        raise ValueError(f'vectors differ in length: {v0.numel()} vs {vt.numel()}')
    denom = float(v0.norm() * vt.norm())
    if denom == 0:
        raise ValueError('angle undefined for a zero vector (a path of only "none" ops?)')
    return math.acos(max(-1.0, min(1.0, float(v0 @ vt) / denom)))


def arch_vector(model, arch) -> torch.Tensor:
    """V(arch, W) of ``model`` (an :class:`SPOSClassifier` or anything with ``path_tensors``)."""
    return flat(model.path_tensors(arch))


def candidate_angle(model_init, model_trained, arch) -> float:
    """theta for one candidate, straight from the definition (slow path, used to check the
    layer-wise scorer)."""
    return angle_between(arch_vector(model_init, arch), arch_vector(model_trained, arch))


class LayerwiseAngleScorer:
    """Angles of many candidates at once.

    <V0, Vt>, |V0|^2 and |Vt|^2 are sums over the path's pieces, so caching them per
    (layer, choice) turns each candidate into a handful of additions: all 6,561 NAS-Bench-Macro
    candidates take milliseconds and no data.

    The defaults give the metric as defined above; two switches exist for ablations:
    ``include_fixed=False`` leaves the shared layers (stem, head, classifier) out of V, and
    ``weight_free='drop'`` leaves out the fixed tensors of weight-free ops (identity, pooling),
    as the official RLNAS code does for skips in its MobileNet space.
    """

    def __init__(self, model_init, model_trained, include_fixed: bool = True,
                 weight_free: str = 'tensor'):
        if weight_free not in ('tensor', 'drop'):
            raise ValueError(f"weight_free must be 'tensor' or 'drop', got {weight_free!r}")
        self.weight_free = weight_free
        self.num_choices = list(model_init.backbone.num_choices)
        if self.num_choices != list(model_trained.backbone.num_choices):
            raise ValueError('initial and trained models come from different search spaces')
        self.fixed = self._stats(model_init.fixed_angle_tensors(),
                                 model_trained.fixed_angle_tensors())
        if not include_fixed:
            self.fixed = np.zeros(3)
        self.choice = [
            np.array([
                self._stats(model_init.choice_angle_tensors(layer, c),
                            model_trained.choice_angle_tensors(layer, c)) for c in range(n)
            ]) for layer, n in enumerate(self.num_choices)
        ]

    def _stats(self, t0: List[torch.Tensor], tt: List[torch.Tensor]) -> np.ndarray:
        if self.weight_free == 'drop':  # fixed tensors of weight-free ops are not Parameters
            t0 = [t for t in t0 if isinstance(t, torch.nn.Parameter)]
            tt = [t for t in tt if isinstance(t, torch.nn.Parameter)]
        v0, vt = flat(t0), flat(tt)
        if v0.shape != vt.shape:
            raise ValueError('initial and trained tensors differ in shape')
        return np.array([float(v0 @ vt), float(v0 @ v0), float(vt @ vt)])

    def score(self, arch: Sequence[int]) -> float:
        return float(self.score_many([arch])[0])

    def score_many(self, archs: Iterable[Sequence[int]]) -> np.ndarray:
        archs = np.asarray(list(archs), dtype=np.int64).reshape(-1, len(self.num_choices))
        total = np.tile(self.fixed, (len(archs), 1))
        for layer, stats in enumerate(self.choice):
            total += stats[archs[:, layer]]
        cos = total[:, 0] / np.sqrt(total[:, 1] * total[:, 2])
        return np.arccos(np.clip(cos, -1.0, 1.0))


def load_models_for_angle(model_cfg: dict, init_state: Dict[str, torch.Tensor],
                          trained_state: Dict[str, torch.Tensor]):
    """Build two copies of the supernet holding W0 and Wt (state dicts, 'module.' stripped)."""
    from ..registry import MODELS
    models = []
    for state in (init_state, trained_state):
        model = MODELS.build(model_cfg)
        state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        models.append(model.eval())
    return models
