"""Export a (pruned) model config + checkpoint to ONNX and check it against PyTorch.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx
        [--shape 1 3 224 224] [--opset 17]

The network is exported in ``tensor`` mode (raw outputs: logits, or detection head maps; no
post-processing / NMS -- use mmdeploy for end-to-end detection graphs). onnxruntime then runs the
file on the same input and the script fails if any output differs by more than
``--rtol`` x max|output|. The .onnx file is written to a temporary name and renamed at the end.
"""
import argparse
import sys

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import BaseModel, revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch.utils._pytree import tree_flatten

from mmdms.utils import atomic_write, register_all_modules, setup_torch_load


class TensorMode(torch.nn.Module):
    """Expose ``model(x, mode='tensor')`` as a plain ``forward(x)`` returning a flat tuple."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x, mode='tensor') if isinstance(self.model, BaseModel) else self.model(x)
        return tuple(t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))


def build_model(config: str, checkpoint: str):
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdms')):
        from mmengine.registry import MODELS
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.eval()
    return model


def export_onnx(model, shape, path, opset=17):
    wrapper = TensorMode(model).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        reference = wrapper(x)
    names = [f'output{i}' for i in range(len(reference))]

    def write(tmp):
        torch.onnx.export(wrapper, (x, ), tmp, input_names=['input'], output_names=names,
                          opset_version=opset, dynamo=False)

    atomic_write(path, write)
    return x, reference


def compare_onnxruntime(path, x, reference):
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {'input': x.numpy()})
    worst = 0.0
    for ort_out, ref in zip(outputs, reference):
        ref = ref.numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        worst = max(worst, float(np.abs(ort_out - ref).max()) / scale)
    return worst


def main():
    parser = argparse.ArgumentParser(description='Export to ONNX and verify with onnxruntime')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True)
    parser.add_argument('--shape', type=int, nargs='+', default=[1, 3, 224, 224])
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--rtol', type=float, default=1e-4)
    args = parser.parse_args()
    model = build_model(args.config, args.checkpoint)
    x, reference = export_onnx(model, args.shape, args.out, args.opset)
    diff = compare_onnxruntime(args.out, x, reference)
    print(f'{args.out}: {len(reference)} outputs, max |onnxruntime - pytorch| / scale = {diff:.2e}')
    if diff > args.rtol:
        print(f'ONNX output differs beyond --rtol {args.rtol}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
