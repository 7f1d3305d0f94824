"""Forward rewrites: the same computation, with sizes read from the tensors being reshaped.

Some attention modules end with ``(attn @ v).transpose(1, 2).reshape(B, N, C)``, where ``C`` is
the width of their *input*. That ties the embedding width to ``heads * head_dim``, so the
tracer's size rules must freeze the whole residual stream (BEiT, EVA, HiViT). The rewrite reads
``-1`` instead: identical for the unpruned model, and correct once heads or the embedding are
pruned. It is installed on the supernet before tracing (so the tracer sees it) and on every
exported model by :func:`mmdms.export.apply_structure` (so ``tools/test.py``, ONNX and mmdeploy
run it too). The state dict is untouched.

Each entry names the module that defines the class, so a same-named class elsewhere is left
alone; tests check every rewrite against the original forward.
"""
import math
import types

import torch
import torch.nn.functional as F
from torch import nn

from mmdms.registry import FORWARD_REWRITES


@FORWARD_REWRITES.register_module(name='BEiTAttention')
class BEiTAttentionRewrite:
    """mmpretrain ``BEiTAttention`` (BEiT, EVA): output reshaped to ``-1``, not the input's C."""
    source = 'mmpretrain.models.utils.attention'

    @staticmethod
    def forward(self, x, rel_pos_bias=None):
        B, N, _ = x.shape
        if self.bias == 'qv_bias':
            k_bias = torch.zeros_like(self.v_bias, requires_grad=False)
            qkv_bias = torch.cat((self.q_bias, k_bias, self.v_bias))
            qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        else:
            qkv = self.qkv(x)
        qkv = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1))
        if self.relative_position_bias_table is not None:
            Wh, Ww = self.window_size
            bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            bias = bias.view(Wh * Ww + 1, Wh * Ww + 1, -1).permute(2, 0, 1).contiguous()
            attn = attn + bias.unsqueeze(0)
        if rel_pos_bias is not None:
            attn = attn + rel_pos_bias
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj_drop(self.proj(x))


@FORWARD_REWRITES.register_module(name='Attention')
class HiViTAttentionRewrite:
    """mmpretrain HiViT ``Attention``: head size and output width read as ``-1``."""
    source = 'mmpretrain.models.backbones.hivit'

    @staticmethod
    def forward(self, x, rpe_index=None, mask=None):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1))
        if rpe_index is not None:
            rpe_index = self.relative_position_index.view(-1)
            S = int(math.sqrt(rpe_index.size(-1)))
            bias = self.relative_position_bias_table[rpe_index].view(-1, S, S, self.num_heads)
            attn = attn + bias.permute(0, 3, 1, 2).contiguous()
        if mask is not None:
            mask = mask.bool()
            attn = attn.masked_fill(~mask[:, None, None, :], float('-inf'))
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj_drop(self.proj(x))


def forward_rewrite(module: nn.Module):
    """The rewrite registered for ``module``'s class (defined in the named source), or None."""
    entry = FORWARD_REWRITES.get(type(module).__name__)
    if entry is None or type(module).__module__ != entry.source:
        return None
    return entry


def install_forward_rewrites(model: nn.Module) -> list:
    """Give every module with a registered rewrite that forward; returns the modules changed
    (a module that already has an instance-level forward is left as it is)."""
    changed = []
    for module in model.modules():
        entry = forward_rewrite(module)
        if entry is not None and 'forward' not in module.__dict__:
            module.forward = types.MethodType(entry.forward, module)
            changed.append(module)
    return changed
