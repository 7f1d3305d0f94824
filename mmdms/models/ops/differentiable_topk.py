"""The differentiable top-k of DMS (arXiv 2405.07194), as pure functions.

A unit of N elements with importances ``c`` keeps a soft mask

    m_i = sigmoid(lambda * (c'_i - a)),   lambda = N * lambda_scale,

where ``a`` in [0, 1] is the learnable pruning ratio and ``c'`` the importances normalised
to evenly spaced ranks. Normalising by rank is what makes the operator work at all: the
threshold ``a`` then moves one element per 1/N, whatever the distribution of ``c``.

Rank normalisation. The paper writes ``c'_i = #{j: c_j < c_i} / N``; with that, the number of
elements with ``m >= 0.5`` is ``N - ceil(a N)``, and the reference code (which also counts the
element itself) keeps ``floor(eN) + 1``. We place element ranks at bin centres,
``c'_i = (#{j: c_j < c_i} + 0.5) / N``, so that ``m_i >= 0.5`` holds for exactly
``round((1 - a) N)`` elements (rounding half up) -- see :func:`kept_count`.
"""
import math

import torch
from torch import Tensor


def normalize_importance(importance: Tensor) -> Tensor:
    """Map importances to evenly spaced ranks ``(#{j: c_j < c_i} + 0.5) / N`` in (0, 1).

    Only the order of ``importance`` matters. Tied elements share the lowest rank of their
    tie group. Works on the last dimension; leading dimensions are independent units.
    """
    n = importance.shape[-1]
    detached = importance.detach()
    sorted_values, _ = torch.sort(detached, dim=-1)
    num_smaller = torch.searchsorted(sorted_values.contiguous(), detached.contiguous(), side='left')
    return (num_smaller.to(importance.dtype) + 0.5) / n


def is_cold_start(importance: Tensor) -> Tensor:
    """True (per unit) where N > 1 importances are all equal: no ranking information yet.

    A single element is never "tied": its rank is defined and the ratio alone decides.
    """
    detached = importance.detach()
    all_equal = (detached == detached[..., :1]).all(dim=-1, keepdim=True)
    return all_equal & (importance.shape[-1] > 1)


def differentiable_topk(importance: Tensor,
                        ratio: Tensor,
                        lambda_scale: float = 1.0) -> Tensor:
    """Soft top-k mask of DMS.

    Args:
        importance: importances of the unit's N elements, shape ``(..., N)``. Not
            differentiated through (importance is estimated, not learned).
        ratio: pruning ratio ``a`` (0-dim tensor or broadcastable to ``(..., 1)``);
            0 keeps everything, 1 drops everything. Gradients flow into it.
        lambda_scale: temperature multiplier; the temperature is ``N * lambda_scale``
            (DMS uses 1 for width units and 4 for depth and head units).

    Returns:
        Soft mask of ``importance``'s shape and dtype, in (0, 1). Where N > 1 importances
        are all equal (cold start) the mask is exactly one: nothing is pruned before any
        element can be ranked.
    """
    if importance.dim() == 0:
        raise ValueError('differentiable_topk expects importances of shape (..., N), '
                         'got a 0-dim tensor')
    return topk_mask_from_ranks(normalize_importance(importance), is_cold_start(importance),
                                ratio, lambda_scale)


def topk_mask_from_ranks(normalized: Tensor, cold_start: Tensor, ratio: Tensor,
                         lambda_scale: float = 1.0) -> Tensor:
    """:func:`differentiable_topk` from precomputed ranks (:func:`normalize_importance`) and
    cold-start flags (:func:`is_cold_start`).

    Ranks change only when importance does (once per iteration), while the mask is needed
    by the forward and again by the resource loss: units cache the ranks and call this.
    """
    n = normalized.shape[-1]
    ratio = ratio.to(normalized.dtype)
    if ratio.dim() > 0 and normalized.dim() > 1:
        ratio = ratio.reshape(ratio.shape + (1, ) * (normalized.dim() - ratio.dim()))
    soft = torch.sigmoid(n * lambda_scale * (normalized - ratio))
    return torch.where(cold_start, torch.ones_like(soft), soft)


def hard_mask(soft_mask: Tensor) -> Tensor:
    """Binary mask used for export and checks: an element is kept where ``m >= 0.5``."""
    return (soft_mask >= 0.5).to(soft_mask.dtype)


def kept_count(num_elements: int, ratio: float) -> int:
    """Number of elements the hard mask keeps for pruning ratio ``ratio``.

    ``round((1 - a) N)`` with halves rounded up, the contract tested against
    :func:`differentiable_topk`.
    """
    return int(math.floor((1.0 - float(ratio)) * num_elements + 0.5))


def ratio_for_kept(num_elements: int, num_kept: int) -> float:
    """The pruning ratio at the centre of the interval that keeps exactly ``num_kept``."""
    if not 0 <= num_kept <= num_elements:
        raise ValueError(f'num_kept={num_kept} is outside [0, {num_elements}]')
    return 1.0 - num_kept / num_elements
