"""mmdeploy torch2onnx on exported (pruned) configs: ResNet-50, DeiT-tiny and YOLOv8-n, pruned
at random to ~50% of every unit, go through ``mmdeploy.apis.torch2onnx`` from their
``pruned_config.py`` (``mmdms.PrunedModel``); onnxruntime reproduces PyTorch."""
import copy
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdms_testing import REPO
from mmdms.apis import randomize_norm_layers
from mmdms.export import apply_structure, pruned_config, save_structure
from mmdms.models.mutators import DMSMutator
from mmdms.utils import load_config

sys.path.insert(0, osp.join(REPO, 'tests', 'test_models', 'test_tracing'))
from test_real_models import MODELS, build  # noqa: E402

try:
    import mmdeploy  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(
        reason='mmdeploy is not installed: `bash tools/setup_env.sh` installs it with '
        '--no-deps (see docs/deploy.md)')

DEPLOY = osp.join(REPO, 'configs', 'deploy')


def random_structure(model, shape, keep_ratio, seed=0):
    """Keep ``round(keep_ratio * N)`` random elements of every unit (as ``prune_check`` does,
    without its own export check, which test_real_models.py covers)."""
    supernet = copy.deepcopy(model)
    mutator = DMSMutator()
    x = torch.randn(*shape)
    mutator.prepare_from_supernet(supernet, lambda: supernet(x, mode='tensor'))
    g = torch.Generator().manual_seed(seed)
    for unit in mutator.units:
        unit.keep(max(unit.min_kept, round(keep_ratio * unit.num_elements)),
                  torch.rand(unit.num_elements, generator=g))
    mutator.set_mode('hard')
    return mutator.structure()


@torch.no_grad()
def spread_scores(model, size):
    """Make a random model's scores as varied as a trained one's, so that comparing them
    means something: classifier logits get std 3 over the classes (softmax is not uniform);
    each YOLOv8 class logit gets zero mean, std 2 over the positions of a random image and a
    -10 shift, so scores spread over (0, 1) with a few thousand candidates above the score
    threshold instead of hundreds of near-equal ones (which make NMS keep arbitrary boxes)."""
    x = torch.rand(1, 3, size, size)
    if hasattr(model, 'bbox_head'):
        outputs = model(x, mode='tensor')[0]
        for branch, logits in zip(model.bbox_head.head_module.cls_preds, outputs):
            conv = branch[-1]
            flat = logits[0].flatten(1)
            mean, std = flat.mean(1), flat.std(1).clamp_min(1e-6)
            conv.weight.mul_((2.0 / std)[:, None, None, None])
            conv.bias.copy_((conv.bias - mean) * 2.0 / std - 10.0)
    else:
        fc = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
        std = float(model(x, mode='tensor').std())
        fc.weight.mul_(3.0 / std)
        fc.bias.mul_(3.0 / std)


def write_export(name, out_dir, keep_ratio=0.5, size=None):
    """What tools/export_pruned.py writes (structure.json, pruned.pth, pruned_config.py), for
    a random ~``keep_ratio`` structure of a real model. Returns the pruned model as well."""
    (scope, config), overrides, shape = MODELS[name]
    torch.manual_seed(0)
    model = build(scope, config, **overrides)
    structure = random_structure(model, shape, keep_ratio)
    pruned = apply_structure(copy.deepcopy(model), structure).eval()
    randomize_norm_layers(pruned, seed=1)  # non-trivial outputs (fresh nets are near-constant)
    spread_scores(pruned, size or shape[-1])
    os.makedirs(out_dir, exist_ok=True)
    save_structure(structure, osp.join(out_dir, 'structure.json'))
    torch.save(dict(state_dict=pruned.state_dict()), osp.join(out_dir, 'pruned.pth'))
    cfg = load_config(config)
    cfg.model.backbone.update(overrides)
    cfg.model.pop('init_cfg', None)
    search = copy.deepcopy(cfg)  # as configs/dms/*.py: mmdms scope, architecture's _scope_
    search.default_scope = 'mmdms'
    search.model = dict(type='DMSAlgorithm', architecture=dict(cfg.model, _scope_=scope))
    pruned_config(search).dump(osp.join(out_dir, 'pruned_config.py'))
    return pruned, osp.join(out_dir, 'pruned_config.py'), osp.join(out_dir, 'pruned.pth')


def run_ort(path, x):
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': x.numpy()})


def assert_no_leftovers(directory):
    leftovers = [p for p in os.listdir(directory) if p.startswith('.mmdeploy-')]
    assert not leftovers, leftovers


def check_classifier(name, tmp_path, deploy, shape):
    from mmdms.deploy import mmdeploy_torch2onnx
    pruned, config, checkpoint = write_export(name, str(tmp_path / 'export'))
    out = str(tmp_path / 'onnx' / f'{name}.onnx')
    report = mmdeploy_torch2onnx(osp.join(DEPLOY, deploy), config, checkpoint, out,
                                 shape=shape)
    assert osp.isfile(out)
    assert_no_leftovers(osp.dirname(out))
    assert report['input_shape'] == [1, 3, *shape]
    assert report['output_shapes'] == {'output': [1, 1000]}
    assert report['rel_diff'] <= 1e-4
    assert set(report['per_output']) == {'output', 'stock_pred_score'}
    assert 'Softmax' in report['onnx_ops']
    # independent of the tool: our own input, the pruned model built here (not from the config)
    x = torch.randn(2 if 'dynamic' in deploy else 1, 3, *shape)
    with torch.no_grad():
        expected = pruned(x, mode='tensor').softmax(-1).numpy()
    (scores, ) = run_ort(out, x)
    assert scores.shape == expected.shape
    assert np.abs(scores - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert expected.max() > 20 * expected.mean()  # the scores are not uniform (a real check)
    return report


def test_deit_tiny_mmdeploy_static(tmp_path):  # ~14 s (25 s on 2 very busy cores)
    # the traced structure was found at 64x64 (img_size=64 in the config); attention heads
    # and the MLP are pruned, so num_heads / head dims of the exported model change
    check_classifier('deit_tiny', tmp_path, 'classification_onnxruntime_static.py', (64, 64))


@pytest.mark.slow  # ~20-25 s on 2 busy cores
def test_resnet50_mmdeploy_dynamic_batch(tmp_path):
    report = check_classifier('resnet50', tmp_path, 'classification_onnxruntime_dynamic.py',
                              (64, 64))
    assert report['batch2']['input_shape'] == [2, 3, 64, 64]
    assert report['batch2']['rel_diff'] <= 1e-4


def check_yolov8(tmp_path, deploy, size, shape=None):
    from mmdms.deploy import mmdeploy_torch2onnx
    _, config, checkpoint = write_export('yolov8_n', str(tmp_path / 'export'), size=size)
    out = str(tmp_path / 'onnx' / 'yolov8_n.onnx')
    report = mmdeploy_torch2onnx(osp.join(DEPLOY, deploy), config, checkpoint, out,
                                 shape=shape)
    assert osp.isfile(out)
    assert_no_leftovers(osp.dirname(out))
    assert report['input_shape'] == [1, 3, size, size]
    assert report['output_shapes'] == {'dets': [1, 300, 5], 'labels': [1, 300]}
    assert 'NonMaxSuppression' in report['onnx_ops']  # an end-to-end graph
    assert report['rel_diff'] <= 1e-4
    # the comparison covered (almost) every detection, not just cut-off rows
    assert report['cutoff_rows'] <= 0.05 * 2 * report['num_detections']
    return report


@pytest.mark.slow  # ~20-30 s on 2 busy cores; DeiT-tiny is the fast representative
def test_yolov8_n_mmdeploy_static_160(tmp_path):
    check_yolov8(tmp_path, 'yolov8_onnxruntime_static.py', 160, shape=(160, 160))


@pytest.mark.slow
def test_yolov8_n_mmdeploy_dynamic_640(tmp_path):
    report = check_yolov8(tmp_path, 'yolov8_onnxruntime_dynamic.py', 640)
    assert report['batch2']['input_shape'] == [2, 3, 640, 640]
    assert report['batch2']['rel_diff'] <= 1e-4


@pytest.mark.slow
def test_cli_writes_verified_onnx(tmp_path):
    _, config, checkpoint = write_export('resnet50', str(tmp_path / 'export'))
    out = tmp_path / 'r50.onnx'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'deployment', 'mmdeploy_torch2onnx.py'),
         osp.join(DEPLOY, 'classification_onnxruntime_static.py'), config, checkpoint,
         '--out', str(out), '--shape', '1', '3', '64', '64'],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'max |onnxruntime - pytorch|' in proc.stdout and out.is_file()


def test_bad_inputs_name_the_problem_and_write_nothing(tmp_path, monkeypatch):
    from mmdms.deploy import DeployError, import_mmdeploy, mmdeploy_torch2onnx
    out_dir = tmp_path / 'onnx'
    out = str(out_dir / 'x.onnx')
    model_cfg = Config(dict(
        model=dict(type='mmdms.PrunedModel', structure='s.json',
                   architecture=dict(_scope_='mmpretrain', type='ImageClassifier')),
        test_pipeline=[dict(type='PackInputs')]))
    ckpt = tmp_path / 'w.pth'
    ckpt.write_bytes(b'')
    # a YOLO deploy config for a classifier
    with pytest.raises(DeployError, match="codebase 'mmyolo' but the model is an mmpretrain"):
        mmdeploy_torch2onnx(osp.join(DEPLOY, 'yolov8_onnxruntime_static.py'), model_cfg,
                            str(ckpt), out)
    # a deploy config without codebase_config
    bad = Config(dict(onnx_config=dict(input_names=['input'], output_names=['output']),
                      backend_config=dict(type='onnxruntime')))
    with pytest.raises(DeployError, match='codebase_config.type is None'):
        mmdeploy_torch2onnx(bad, model_cfg, str(ckpt), out)
    with pytest.raises(DeployError, match='does not exist'):
        mmdeploy_torch2onnx(osp.join(DEPLOY, 'nope.py'), model_cfg, str(ckpt), out)
    with pytest.raises(DeployError, match=r'shape must be \(height, width\)'):
        mmdeploy_torch2onnx(osp.join(DEPLOY, 'classification_onnxruntime_static.py'),
                            model_cfg, str(ckpt), out, shape=(1, 3, 64, 64))
    assert not out_dir.exists() or not os.listdir(out_dir)
    # mmdeploy missing: the message says how to install it
    monkeypatch.setitem(sys.modules, 'mmdeploy', None)
    with pytest.raises(DeployError, match='pip install --no-deps mmdeploy==1.3.1'):
        import_mmdeploy()


def test_prepare_model_config_adapts_pruned_configs():
    from mmdms.deploy import prepare_model_config
    cfg = Config(dict(
        model=dict(type='mmdms.PrunedModel', structure='s.json', architecture=dict(
            _scope_='mmyolo', type='YOLODetector', data_preprocessor=dict(type='X', a=1))),
        test_pipeline=[dict(type='LoadImageFromFile')]))
    cfg.default_scope = 'mmdms'
    out = prepare_model_config(cfg, 'mmyolo')
    assert out.model.data_preprocessor == dict(type='X', a=1)  # lifted, not overridden by {}
    assert out.default_scope == 'mmyolo'  # the test pipeline is built in the current scope
    assert 'data_preprocessor' not in cfg.model and cfg.default_scope == 'mmdms'  # a copy
    cls_cfg = Config(dict(
        model=dict(_scope_='mmpretrain', type='ImageClassifier'),
        test_pipeline=[dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=256),
                       dict(type='CenterCrop', crop_size=224), dict(type='PackInputs')]))
    out = prepare_model_config(cls_cfg, 'mmpretrain', input_shape=(96, 64))
    assert [t['type'] for t in out.test_pipeline] == ['LoadImageFromFile', 'Resize',
                                                      'PackInputs']
    assert tuple(out.test_pipeline[1]['scale']) == (96, 64)


def test_compare_detections_is_order_free_and_skips_cutoff_rows():
    from mmdms.deploy import compare_detections
    rng = np.random.RandomState(0)
    dets = np.concatenate([rng.rand(1, 6, 4) * 100, np.linspace(0.9, 0.4, 6)[None, :, None]],
                          -1).astype(np.float32)
    labels = np.array([[0, 1, 0, 2, 1, 0]])
    perm = [3, 0, 5, 1, 4, 2]
    worst, skipped = compare_detections(dets, labels, dets[:, perm] + 1e-5, labels[:, perm])
    assert 0 < worst <= 2e-5 and skipped == 2  # the lowest row, on each side
    moved = dets.copy()
    moved[0, 1, 0] += 3.0  # one box differs by 3 px
    assert compare_detections(dets, labels, moved, labels)[0] == pytest.approx(3.0, abs=1e-4)
    relabelled = labels.copy()
    relabelled[0, 0] = 5  # no same-class partner
    assert compare_detections(dets, labels, dets, relabelled)[0] == float('inf')
    # a different last row (on the top-k cut-off) is not an error
    swapped = dets.copy()
    swapped[0, 5, :4] += 50.0
    swapped[0, 5, 4] += 5e-5
    assert compare_detections(dets, labels, swapped, labels)[0] <= 1e-6
