"""Tests of tools/analysis_tools/trace_units.py and prune_zoo.py on small real configs.

ResNet-18 and MobileNet-V2 run at 32x32, so the whole file takes well under 30 s on 2 idle
CPU cores (most of it is importing mmpretrain).
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools' / 'analysis_tools'
RESNET18 = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
MOBILENET_V2 = 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'


def _load(name):
    # tools/ is not a package; prune_zoo imports its siblings by path
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


trace_units = _load('trace_units')
zoo_models = _load('zoo_models')
prune_zoo = _load('prune_zoo')

MODEL_KEYS = {
    'name', 'config', 'status', 'reason', 'num_channel_units', 'num_block_units',
    'num_head_units', 'num_frozen_groups', 'frozen_reasons', 'flops_ratio', 'params_ratio',
    'max_abs_diff', 'output_scale', 'seconds', 'input_shape', 'num_layers',
    'num_untouched_layers'
}


def test_trace_units_resnet18(tmp_path, capsys):
    out = tmp_path / 'table.json'
    result = trace_units.main([RESNET18, '--input-shape', '1', '3', '32', '32', '--out', str(out)])
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result))
    assert written['scope'] == 'mmpretrain'  # from the mmpretrain:: prefix
    assert written['input_shape'] == [1, 3, 32, 32]
    # ResNet-18: stem + 3 stage outputs (residual-coupled) + 8 block-internal convs
    assert written['num_channel_units'] == 12
    assert written['num_block_units'] == 4  # one depth unit per stage
    assert written['removable_blocks'] == 5  # layer1.{0,1}, layer{2,3,4}.1
    units = {u['unit']: u for u in written['units']}
    stem = units['backbone.conv1']
    assert stem['kind'] == 'channel' and stem['size'] == 64
    # the stem's channels run through layer1's residual adds: convs and norms there follow
    assert {'backbone.conv1', 'backbone.bn1', 'backbone.layer1.0.conv1',
            'backbone.layer2.0.downsample.0'} <= set(stem['layers'])
    assert units['backbone.layer1.0.conv1']['layers'] == [
        'backbone.layer1.0.bn1', 'backbone.layer1.0.conv1', 'backbone.layer1.0.conv2']
    assert [(f['group'], f['size'], f['reason']) for f in written['frozen']] == [
        ('head.fc', 1000, 'reaches a model output')]
    assert 0 < written['trace_seconds'] < 30
    assert 'backbone.layer4.1.conv1' in printed and 'reaches a model output' in printed


def test_trace_units_scope_and_helpers():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(type='YOLODetector'), default_scope='mmyolo'))
    assert trace_units.detect_scope(cfg, 'mmdet::x.py') == 'mmdet'  # prefix wins
    assert trace_units.detect_scope(cfg, 'local.py') == 'mmyolo'  # then default_scope
    cfg = Config(dict(model=dict(type='RetinaNet')))
    assert trace_units.detect_scope(cfg, 'local.py') == 'mmdet'  # then the registries
    stripped = trace_units.strip_pretrained(dict(
        pretrained='torchvision://resnet50',
        backbone=dict(type='ResNet', init_cfg=dict(type='Pretrained', checkpoint='x.pth')),
        head=dict(init_cfg=dict(type='Normal', std=0.01))))
    assert stripped == dict(backbone=dict(type='ResNet'),
                            head=dict(init_cfg=dict(type='Normal', std=0.01)))
    assert trace_units.parse_cfg_options(['a.b=31', "c='x'", 'd=name']) == dict(
        {'a.b': 31, 'c': 'x', 'd': 'name'})


def test_zoo_model_list(tmp_path):
    names = [m['name'] for m in zoo_models.ZOO]
    assert len(names) == len(set(names))
    for required in ('retinanet-r50', 'fcos-r50', 'faster-rcnn-r50', 'atss-r50', 'yolov5-s',
                     'yolov6-n', 'yolov8-n', 'yolov8-s', 'rtmdet-tiny', 'resnet18'):
        assert required in names
    listed = tmp_path / 'models.txt'
    listed.write_text(f'resnet18  # a comment\n\n{MOBILENET_V2}\nmmdet::x/y_z.py\n')
    models = zoo_models.load_model_list(str(listed))
    assert [m['name'] for m in models] == ['resnet18', 'mobilenet-v2', 'y_z']
    assert [m['name'] for m in zoo_models.load_model_list('mmdet')] == [
        m['name'] for m in zoo_models.MMDET]


def test_classify_and_markdown():
    base = dict(name='m', config='c.py', status='ok', num_channel_units=3, num_block_units=0,
                num_head_units=0, num_frozen_groups=2, output_scale=2.0, max_abs_diff=1e-7,
                flops_ratio=0.3, params_ratio=0.3, num_layers=10, num_untouched_layers=2,
                untouched_fraction=0.2, seconds=1.0, input_shape=[1, 3, 64, 64],
                frozen_reasons=[dict(reason='reaches a model output', groups=1),
                                dict(reason="unsupported op 'sort'", groups=1)])
    ok = dict(base)
    prune_zoo.classify(ok)
    assert ok['status'] == 'pass' and "unsupported op 'sort'" in ok['reason']
    wrong = dict(base, max_abs_diff=1e-3)  # tolerance 1e-4 * 2
    prune_zoo.classify(wrong)
    assert wrong['status'] == 'fail' and 'disagrees' in wrong['reason']
    weak = dict(base, flops_ratio=0.7, num_untouched_layers=6, untouched_fraction=0.6)
    prune_zoo.classify(weak)
    assert weak['status'] == 'weak' and 'FLOPs ratio 0.700' in weak['reason'] \
        and '6/10' in weak['reason']
    crashed = dict(name='x', config='x.py', status='fail', reason='forward: boom',
                   mmdms_frames=['mmdms/a.py:1 in f: g()'], innermost_frame='lib.py:2 in h: 1/0')
    report = dict(generated='now', keep_ratio=0.5, seed=0, versions={}, models=[ok, weak, crashed],
                  skipped={'lenet': 'MNIST only'}, trace_benchmark=None)
    report['summary'] = prune_zoo.summarize(report['models'])
    assert report['summary'] == dict(total=3, **{'pass': 1, 'weak': 1, 'fail': 1})
    md = prune_zoo.render_markdown(report)
    assert '**1 pass, 1 weak, 1 fail** of 3 models' in md
    assert md.count('\n| m | `c.py` |') == 2 and '| x | `x.py` | **fail** |' in md
    assert '* mmdms frame: `mmdms/a.py:1 in f: g()`' in md
    assert '* raised at: `lib.py:2 in h: 1/0`' in md and '`lenet`: MNIST only' in md


def test_untouched_layers():
    structure = dict(slots={'a.conv.weight': {}, 'b.fc.bias': {}},
                     removed_blocks=['blocks.1'])
    layers = ['a.conv', 'b.fc', 'blocks.1.fc1', 'blocks.10.fc1', 'head.fc']
    assert prune_zoo.untouched_layers(layers, structure) == ['blocks.10.fc1', 'head.fc']


def test_randomize_masked_forward_params():
    """GRN starts as the identity (zero gamma/beta), which would hide a wrong masked forward
    from the zoo's check: its constant parameters get random values; zero parameters of
    modules without a masked forward stay."""
    import torch
    from torch import nn
    GRN = pytest.importorskip('mmpretrain.models.utils.norm').GRN
    model = nn.Sequential(nn.Conv2d(3, 6, 1), GRN(6))
    nn.init.zeros_(model[0].bias)
    assert prune_zoo.randomize_masked_forward_params(model) == ['1.gamma', '1.beta']
    for p in (model[1].gamma, model[1].beta):
        assert 0.5 <= float(p.min()) and float(p.max()) <= 1.5 and float(p.std()) > 0
    assert bool((model[0].bias == 0).all())
    assert prune_zoo.randomize_masked_forward_params(model) == []  # no longer constant
    x = torch.randn(1, 6, 4, 4)
    assert not torch.allclose(model[1](x), x)


@pytest.mark.parametrize('isolation', ['fork'])
def test_prune_zoo_two_models(tmp_path, isolation):
    report = prune_zoo.main([
        '--models', f'{RESNET18},mobilenet-v2', '--out-dir', str(tmp_path), '--isolation',
        isolation, '--trace-benchmark', 'no', '--input-shape', '1', '3', '32', '32'
    ])
    data = json.loads((tmp_path / 'prune_zoo.json').read_text())
    assert data['summary'] == dict(total=2, **{'pass': 2, 'weak': 0, 'fail': 0})
    assert {'generated', 'keep_ratio', 'seed', 'versions', 'criteria', 'models',
            'summary'} <= set(data)
    assert data['keep_ratio'] == 0.5
    by_name = {m['name']: m for m in data['models']}
    assert set(by_name) == {'resnet18', 'mobilenet-v2'}
    for rec in by_name.values():
        assert MODEL_KEYS <= set(rec), MODEL_KEYS - set(rec)
        assert rec['status'] == 'pass', rec
        assert rec['num_channel_units'] > 0 and rec['num_block_units'] > 0
        assert rec['flops_ratio'] <= 0.5 and rec['params_ratio'] < 1
        assert rec['max_abs_diff'] <= 1e-4 * max(1.0, rec['output_scale'])
        assert rec['num_untouched_layers'] == 0 and rec['input_shape'] == [1, 3, 32, 32]
    assert by_name['resnet18']['num_channel_units'] == 12
    assert by_name['mobilenet-v2']['num_channel_units'] > 12
    md = (tmp_path / 'prune_zoo.md').read_text()
    assert '**2 pass, 0 weak, 0 fail** of 2 models' in md
    rows = [line for line in md.splitlines() if line.startswith('| ') and '`mmpretrain::' in line]
    assert len(rows) == 2
    assert any(row.startswith('| resnet18 | `mmpretrain::resnet/resnet18_8xb32_in1k.py` | pass |')
               for row in rows)
    assert report['summary'] == data['summary']
    assert not list(tmp_path.glob('.*tmp*'))  # atomic writes leave no temporaries


def test_match_causes():
    crashed = dict(status='fail', stage='prune_check',
                   reason="prune_check: TypeError: Identity.forward() takes 2 positional "
                   'arguments but 3 were given @ mmdms/apis/prune_check.py:112')
    assert prune_zoo.match_causes(crashed) == ['export-identity-signature']
    weak = dict(status='weak', reason='FLOPs ratio 0.7 > 0.5', frozen_reasons=[
        dict(reason="group conv with groups=32 (in 128, out 128); only groups=1 and depthwise "
             "are pruned (conv2d in 'x')", groups=2),
        dict(reason='reaches a model output', groups=1)])
    assert prune_zoo.match_causes(weak) == ['group-conv']
    broken = dict(status='fail', stage='build', reason='build: KeyError: x')
    assert prune_zoo.match_causes(broken) == ['build-or-forward']
