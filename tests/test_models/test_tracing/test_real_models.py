"""Real OpenMMLab models: units are discovered with no per-model code, the export equals the
hard-masked supernet, FLOPs drop, and the structure round-trips through JSON."""
import copy

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from mmdms.apis import max_abs_diff, prune_check
from mmdms.export import StructureError, apply_structure, load_structure, save_structure
from mmdms.utils import load_config


def build(scope, config, **backbone_overrides):
    import importlib
    importlib.import_module(f'{scope}.models')
    cfg = load_config(config)
    cfg.model.backbone.update(backbone_overrides)
    cfg.model.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.eval()
    return model


MODELS = {
    'resnet50': (('mmpretrain', 'mmpretrain::resnet/resnet50_8xb32_in1k.py'), {}, (1, 3, 64, 64)),
    'mobilenet_v2': (('mmpretrain', 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'), {},
                     (1, 3, 64, 64)),
    'deit_tiny': (('mmpretrain', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'),
                  dict(img_size=64), (1, 3, 64, 64)),
    'yolov8_n': (('mmyolo', 'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py'), {},
                 (1, 3, 128, 128)),
}
EXPECTED = {  # (channel units, block units, head units)
    'resnet50': (37, 4, 0),
    'mobilenet_v2': (25, 5, 0),
    'deit_tiny': (13, 1, 12),
    'yolov8_n': (51, 4, 0),
}


@pytest.fixture(scope='module')
def checked():
    return {}


@pytest.mark.parametrize('name', list(MODELS))
def test_exported_equals_masked(name, checked, tmp_path):
    (scope, config), overrides, shape = MODELS[name]
    torch.manual_seed(0)
    model = build(scope, config, **overrides)
    x = torch.randn(*shape)
    result = prune_check(model, x, keep_ratio=0.5, seed=0)
    units = (result['num_channel_units'], result['num_block_units'], result['num_head_units'])
    assert units == EXPECTED[name]
    assert result['max_abs_diff'] <= 1e-4 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']  # pruning changed the function
    assert result['flops_ratio'] < 0.6 and result['params_ratio'] < 0.6
    # only expected constraints (outputs, the DFL head's softmax over its bins) or attention
    # internals are frozen
    for reason in result['frozen']:
        assert ('model output' in reason or 'splits a channel dim' in reason
                or 'attention head' in reason or
                reason.startswith("softmax over a channel dim (softmax in 'bbox_head")), reason

    # structure JSON round trip rebuilds the same pruned model without tracing
    path = tmp_path / 'structure.json'
    save_structure(result['structure'], str(path))
    rebuilt = apply_structure(copy.deepcopy(model), load_structure(str(path)))
    rebuilt.eval()
    reference = apply_structure(copy.deepcopy(model), result['structure'])
    reference.eval()
    call = (lambda m: m(x, mode='tensor'))
    with torch.no_grad():
        assert max_abs_diff(call(rebuilt), call(reference)) == 0.0
    assert set(rebuilt.state_dict()) == set(reference.state_dict())


def test_structure_for_another_config_is_rejected(tmp_path):
    model = build('mmpretrain', 'mmpretrain::resnet/resnet18_8xb32_in1k.py')
    result = prune_check(model, torch.randn(1, 3, 32, 32), keep_ratio=0.5)
    other = build('mmpretrain', 'mmpretrain::resnet/resnet50_8xb32_in1k.py')
    with pytest.raises(StructureError, match='another config'):
        apply_structure(other, result['structure'])
    corrupted = tmp_path / 'bad.json'
    corrupted.write_text('{"version": 1, "slots": {')
    with pytest.raises(StructureError, match='corrupted structure file'):
        load_structure(str(corrupted))


class _SwinBlockNet(torch.nn.Module):
    """Embedding -> mmpretrain SwinBlock -> head: WindowMSA computes its head size as
    ``C // num_heads`` from ``x.shape``."""

    def __init__(self):
        super().__init__()
        from mmpretrain.models.backbones.swin_transformer import SwinBlock
        self.embed = torch.nn.Linear(3, 16)
        self.block = SwinBlock(16, num_heads=2, window_size=4)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.block(self.embed(x), (8, 8)))


def _res2net_block():
    """Res2Net's ``torch.split(x, self.width, 1)``: a constant split size."""
    from mmpretrain.models.backbones.res2net import Bottle2neck
    return Bottle2neck(64, 64, scales=4, base_width=26, base_channels=16)


def _van():
    """VAN reshapes stage outputs to ``block.out_channels``, kept in step by an adapter."""
    from mmpretrain.models.backbones import VAN
    return VAN(arch=dict(embed_dims=[8, 16], depths=[1, 1], ffn_ratios=[2, 2]),
               out_indices=(1, ))


SIZE_READ_MODELS = {  # (build, input shape, channel units, frozen reason expected)
    'swin_block': (_SwinBlockNet, (1, 64, 3), 1,
                   "reshape sizes a dim by a size read from a tensor (x.shape/size() read in "
                   "'block.attn.w_msa')"),
    'res2net_block': (_res2net_block, (1, 64, 8, 8), 1,
                      'split gives a channel dim the constant size 26'),
    'van': (_van, (1, 3, 32, 32), 5, None),
}


@pytest.mark.parametrize('name', list(SIZE_READ_MODELS))
def test_sizes_in_model_code_keep_the_export_exact(name):
    """Sizes read from tensors or held in attributes: the export runs and equals the masked
    model (these crashed the exported model before the size rules)."""
    make, shape, units, reason = SIZE_READ_MODELS[name]
    torch.manual_seed(0)
    model = make()
    model.eval()
    result = prune_check(model, torch.randn(*shape), keep_ratio=0.5, seed=0)
    assert result['num_channel_units'] == units
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])
    assert result['flops_ratio'] < 0.9
    if reason is not None:
        assert any(r.startswith(reason) for r in result['frozen']), result['frozen']
