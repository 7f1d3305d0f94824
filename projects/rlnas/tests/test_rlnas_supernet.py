import collections
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from projects.rlnas.rlnas.models import arch_to_str, parse_arch
from projects.rlnas.rlnas.registry import MODELS
from projects.rlnas.rlnas.search import LayerwiseComplexity

from _tiny import REPO_ROOT, tiny_model

SPACES = osp.join(REPO_ROOT, 'projects/rlnas/configs/_base_/spaces')


def nbm_model(**backbone):
    space = Config.fromfile(osp.join(SPACES, 'nas_bench_macro.py'))
    return MODELS.build(dict(type='rlnas.SPOSClassifier', backbone=dict(space.supernet,
                                                                         **backbone),
                             num_classes=10, data_preprocessor=dict(type='BaseDataPreprocessor')))


def test_arch_parsing():
    assert parse_arch('2101', [3, 3, 3, 3]) == (2, 1, 0, 1)
    assert parse_arch('10-2', [11, 3]) == (10, 2)
    assert arch_to_str((10, 2), [11, 3]) == '10-2' and arch_to_str((2, 1)) == '21'
    for bad in ('21', '2131', 'ab01'):
        with pytest.raises(ValueError):
            parse_arch(bad, [3, 3, 3, 3])


def test_nas_bench_macro_space_matches_the_benchmark():
    """Same params and FLOPs as the benchmark's table: the supernet is the benchmark's space."""
    from projects.rlnas.rlnas.benchmark import NASBenchMacro
    try:
        bench = NASBenchMacro()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    model = nbm_model()
    assert model.backbone.num_choices == [3] * 8
    table = LayerwiseComplexity(model, (3, 32, 32))
    rng = np.random.default_rng(0)
    picks = ['00000000', '22222222', '11111111']
    picks += list(rng.choice(bench.archs, 40, replace=False))
    for arch in picks:
        info = bench.lookup(arch)
        cost = table(parse_arch(arch, [3] * 8))
        assert cost['flops'] == info['flops'], arch
        assert cost['params'] == info['params'], arch
    # and a standalone subnet really has that many parameters
    sub = nbm_model(fixed_arch='02012100')
    assert sum(p.numel() for p in sub.parameters()) == bench.lookup('02012100')['params']


def test_uniform_single_path_sampling():
    model = tiny_model()
    torch.manual_seed(0)
    counts = collections.Counter()
    for _ in range(600):
        for layer, c in enumerate(model.backbone.sample_arch()):
            counts[layer, c] += 1
    for layer in range(4):
        for c in range(3):
            assert 150 < counts[layer, c] < 250  # 200 expected, sd ~11.5
    model.train()
    model(torch.randn(2, 3, 16, 16))
    assert model.last_arch is not None
    model.set_arch('1201')
    model.eval()
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 4) and model.last_arch == (1, 2, 0, 1)


def test_subnet_equals_supernet_path():
    torch.manual_seed(0)
    sup = tiny_model(choices=('id', 'mb3k3', 'avg3', 'none'))
    for m in sup.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    sup.eval()
    x = torch.randn(3, 3, 16, 16)
    for arch in [(1, 2, 0, 3), (0, 0, 2, 1), (2, 1, 1, 2)]:
        sub = tiny_model(choices=('id', 'mb3k3', 'avg3', 'none'), fixed_arch=arch)
        sub.load_state_dict(sup.subnet_state_dict(arch), strict=True)
        sub.eval()
        assert len(list(sub.parameters())) < len(list(sup.parameters()))
        torch.testing.assert_close(sub(x), sup.logits(x, arch), rtol=1e-5, atol=1e-6)


def test_space_errors():
    from _tiny import tiny_supernet_cfg
    cfg = tiny_supernet_cfg()
    cfg['layers'][1]['choices'] = ['id', 'nope']
    with pytest.raises(KeyError, match='nope'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='channels'):
        MODELS.build(dict(type='rlnas.PoolOp', in_channels=4, out_channels=8))
    with pytest.raises(ValueError, match='arch'):
        tiny_model().backbone(torch.randn(1, 3, 16, 16))


def test_mobilenet_imagenet_space_builds():
    space = Config.fromfile(osp.join(SPACES, 'mobilenet_imagenet.py'))
    backbone = MODELS.build(space.supernet)
    assert backbone.num_layers == 22 and backbone.num_choices[0] == 1
    assert backbone.num_choices.count(7) == 15 and backbone.num_choices.count(6) == 6
    torch.manual_seed(0)
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 32, 32), backbone.sample_arch())
    assert out.shape == (1, 1280)
