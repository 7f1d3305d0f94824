"""Forward rewrites equal the original forwards, lift the embedding freeze of attention that
reshapes to its input's width, and are installed on exported models."""
import copy

import pytest
import torch
from mmpretrain.models.backbones.hivit import Attention as HiViTAttention
from mmpretrain.models.utils.attention import BEiTAttention
from torch import nn

from mmdms.apis import prune_check
from mmdms.export import apply_structure, forward_rewrite, install_forward_rewrites
from mmdms.models import DMSMutator


def randomized(module):
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.normal_(p, std=0.2)
    return module.eval()


CASES = {
    'beit-qv-bias-rel-pos': (lambda: BEiTAttention(32, 4, (3, 3), use_rel_pos_bias=True),
                             (2, 10, 32), {}),
    'beit-plain-bias': (lambda: BEiTAttention(32, 4, None, use_rel_pos_bias=False, bias=True),
                        (2, 7, 32), {}),
    'hivit-rpe': (lambda: HiViTAttention(3, 32, 4, rpe=True), (2, 9, 32),
                  dict(rpe_index=True)),
}


@pytest.mark.parametrize('case', list(CASES))
def test_rewrite_equals_the_original_forward(case):
    build, shape, kwargs = CASES[case]
    original = randomized(build())
    rewritten = copy.deepcopy(original)
    assert forward_rewrite(rewritten) is not None
    assert install_forward_rewrites(rewritten) == [rewritten]
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(rewritten(x, **kwargs), original(x, **kwargs))


def test_same_named_class_elsewhere_is_not_rewritten():

    class Attention(nn.Module):  # not HiViT's

        def forward(self, x):
            return x

    module = Attention()
    assert forward_rewrite(module) is None and install_forward_rewrites(module) == []


class TinyBEiT(nn.Module):
    """Two pre-norm BEiT blocks around an embedding: the residual stream runs through
    ``BEiTAttention``, which reshapes its output to the input's width."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.embed = nn.Linear(5, dim)
        self.blocks = nn.ModuleList()
        for _ in range(2):
            block = nn.Module()
            block.norm = nn.LayerNorm(dim)
            block.attn = BEiTAttention(dim, heads, None, use_rel_pos_bias=False)
            self.blocks.append(block)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = x + block.attn(block.norm(x))
        return self.head(x)


def test_rewrite_lets_the_embedding_and_heads_be_pruned_exactly():
    x = torch.randn(2, 6, 5)
    model = randomized(TinyBEiT())
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    assert [u.num_elements for u in mutator.head_units] == [4, 4]
    assert 32 in [u.num_elements for u in mutator.channel_units]  # the residual stream
    assert all('forward' in b.attn.__dict__ for b in model.blocks)
    mutator.remove_hooks()
    assert not any('forward' in b.attn.__dict__ for b in model.blocks)
    for seed in (0, 1):
        result = prune_check(randomized(TinyBEiT()), x, seed=seed)
        assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
        assert result['flops_ratio'] < 0.5
        exported = apply_structure(randomized(TinyBEiT()), result['structure'])
        assert exported.embed.out_features == 16
        assert all(b.attn.num_heads == 2 and 'forward' in b.attn.__dict__
                   for b in exported.blocks)
