import os.path as osp

import pytest
import torch
from mmengine.config import Config

from projects.pgnas.pgnas import build_static_candidate, export_candidate
from projects.pgnas.pgnas.models import (MixedConv, candidate_context, dropout_units,
                                         sample_candidate)
from projects.pgnas.tests.conftest import build, tiny_model_cfg, warm_up_bn




def _candidate_with_a_dead_branch(model, seed=0):
    cand = sample_candidate(model, seed, 0, drop_rate=0.4)
    dead = 'backbone.layer2.0.conv1.branches.k1.dropout'
    cand[dead] = torch.zeros_like(cand[dead])
    return cand, dead


@pytest.mark.parametrize('learnable', [True, False])
def test_export_equals_sampled_masked_network(learnable):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(learnable=learnable)
    model = warm_up_bn(build(cfg))
    cand, dead = _candidate_with_a_dead_branch(model)
    static, structure = build_static_candidate(model, cand, cfg)
    static.eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad(), candidate_context(model, cand):
        expected = model(x, mode='tensor')
    with torch.no_grad():
        got = static(x, mode='tensor')
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    # physically smaller: no gates, dropped channels and the dead branch gone
    assert not dropout_units(static)
    assert 'k1' not in static.backbone.layer2[0].conv1.branches
    n_super = sum(p.numel() for n, p in model.named_parameters() if 'p_logit' not in n)
    n_static = sum(p.numel() for p in static.parameters())
    assert n_static < n_super
    k3 = static.backbone.layer1[0].conv2.branches['k3']
    kept = int(cand['backbone.layer1.0.conv2.branches.k3.dropout'].sum())
    assert k3.conv.weight.shape == (4, kept, 3, 3) and k3.conv.in_channels == kept
    # the supernet is untouched (still full size, no mask left)
    assert all(u.candidate_mask is None for u in dropout_units(model).values())


def test_all_branches_dropped_gives_zero_sum():
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    model = warm_up_bn(build(cfg))
    cand = sample_candidate(model, 0, 0)
    for name in cand:
        if '.layer3.0.conv2.' in name:
            cand[name] = torch.zeros_like(cand[name])
    static, _ = build_static_candidate(model, cand, cfg)
    static.eval()
    mixed = static.backbone.layer3[0].conv2
    assert isinstance(mixed, MixedConv) and len(mixed.branches) == 0
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), candidate_context(model, cand):
        expected = model(x, mode='tensor')
    with torch.no_grad():
        assert torch.allclose(static(x, mode='tensor'), expected, atol=1e-5, rtol=1e-4)


def test_exported_files_rebuild_the_same_model(tmp_path):
    torch.manual_seed(0)
    model_cfg = tiny_model_cfg()
    model = warm_up_bn(build(model_cfg))
    cand, _ = _candidate_with_a_dead_branch(model, seed=1)
    cfg = Config(dict(model=model_cfg, default_scope='mmpretrain',
                      train_cfg=dict(type='whatever'), optim_wrapper=dict(),
                      test_dataloader=dict(batch_size=2), test_cfg=dict(),
                      test_evaluator=dict(type='Accuracy')))
    paths = export_candidate(model, cand, cfg, str(tmp_path), 'best', meta=dict(index=0))
    for key in ('config', 'checkpoint', 'structure'):
        assert osp.isfile(paths[key])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    exported = Config.fromfile(paths['config'])
    assert 'train_cfg' not in exported and 'optim_wrapper' not in exported
    assert 'dropout_cfg' not in exported.model.backbone
    rebuilt = build(exported.model).eval()
    state = torch.load(paths['checkpoint'], weights_only=True)
    rebuilt.load_state_dict(state['state_dict'], strict=True)
    assert state['meta'] == dict(index=0)
    assert sum(p.numel() for p in rebuilt.parameters()) == paths['params']
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), candidate_context(model, cand):
        expected = model(x, mode='tensor')
    with torch.no_grad():
        assert torch.allclose(rebuilt(x, mode='tensor'), expected, atol=1e-5, rtol=1e-4)


def test_apply_structure_refuses_the_searchable_backbone(tiny_model):
    cand = sample_candidate(tiny_model, 0, 0)
    from projects.pgnas.pgnas.models import candidate_to_structure
    with pytest.raises(RuntimeError, match='static'):
        tiny_model.backbone.apply_structure(candidate_to_structure(cand))
