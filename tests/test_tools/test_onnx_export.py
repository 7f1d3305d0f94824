"""Pruned (exported) models convert to ONNX and onnxruntime reproduces PyTorch."""
import copy
import importlib.util
import os.path as osp
import sys

import pytest
import torch

from mmdms_testing import REPO
from mmdms.apis import prune_check
from mmdms.export import apply_structure

sys.path.insert(0, osp.join(REPO, 'tests', 'test_models', 'test_tracing'))
from test_real_models import MODELS, build  # noqa: E402

spec = importlib.util.spec_from_file_location(
    'pytorch2onnx', osp.join(REPO, 'tools', 'deployment', 'pytorch2onnx.py'))
pytorch2onnx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pytorch2onnx)


@pytest.mark.parametrize('name', ['resnet50', 'deit_tiny', 'yolov8_n'])
def test_pruned_model_onnx_matches_pytorch(name, tmp_path):
    (scope, config), overrides, shape = MODELS[name]
    model = build(scope, config, **overrides)
    result = prune_check(model, torch.randn(*shape), keep_ratio=0.5)
    pruned = apply_structure(copy.deepcopy(model), result['structure']).eval()
    path = str(tmp_path / f'{name}.onnx')
    x, reference = pytorch2onnx.export_onnx(pruned, shape, path)
    assert osp.isfile(path) and not any(p.name.endswith('.tmp.onnx') for p in tmp_path.iterdir())
    assert pytorch2onnx.compare_onnxruntime(path, x, reference) <= 1e-4
