"""``mmdeploy.apis.torch2onnx`` for exported (pruned) configs, plus an onnxruntime check.

An exported ``pruned_config.py`` describes its model as ``type='mmdms.PrunedModel'``, a builder
that returns the *original* class (ImageClassifier, YOLODetector, ...) physically pruned, so
mmdeploy's task processors and rewriters apply unchanged. Three things stand between
mmdeploy 1.3.1 and our stack; each is handled here, in the smallest way we found:

1. **torch >= 2.9 defaults ``torch.onnx.export`` to the dynamo exporter.** mmdeploy calls it
   without ``dynamo=``; its rewriters (softmax heads, end-to-end NMS, ...) act on the
   TorchScript exporter, and the dynamo one needs ``onnxscript``. The export fails with
   "No module named 'onnxscript'" (or, with onnxscript, bypasses the rewriters).
   :func:`torchscript_onnx_exporter` makes ``dynamo=False`` the default while mmdeploy runs.
2. **mmdeploy's task processors pass the config's top-level ``data_preprocessor`` as a build
   argument** (``model.setdefault('data_preprocessor', cfg.get('data_preprocessor', {}))``).
   mmyolo configs keep it inside the model, so ``PrunedModel`` would receive ``{}`` and the
   detector fails to build. :func:`prepare_model_config` lifts the architecture's
   ``data_preprocessor`` to the ``PrunedModel`` level (``PrunedModel`` merges it back, same
   value).
3. **mmpretrain's task processor ignores ``onnx_config.input_shape``** (only warns); the
   input size comes from the test pipeline's resize/crop. For a static shape we replace those
   steps by one ``Resize`` to the requested size, so e.g. a 64x64 export is possible.
4. **mmdeploy makes the config's ``default_scope`` current** and builds the test pipeline in
   it. Exports of DMS searches say ``default_scope = 'mmdms'`` (their datasets carry
   ``_scope_``), where ``PackInputs`` & co. do not exist; the scope is set to the codebase
   (the model itself is found through ``mmdms.PrunedModel`` and the architecture's
   ``_scope_`` either way).

mmdeploy 1.3.1 also declares ``protobuf<=3.20.2``, which contradicts onnx >= 1.18 and
onnxruntime >= 1.20 (``protobuf>=4.25``). Its Python export path runs with the newer protobuf,
so ``tools/setup_env.sh`` installs it with ``--no-deps`` plus its other runtime dependencies
(``requirements/deploy.txt``); ``pip check`` reports that one pin.
"""
import contextlib
import copy
import functools
import inspect
import os
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

#: deploy ``codebase_config.type`` -> the task our verification understands
SUPPORTED_CODEBASES = {
    'mmpretrain': 'Classification',
    'mmdet': 'ObjectDetection',
    'mmyolo': 'ObjectDetection',
}

INSTALL_HINT = ('install it with `bash tools/setup_env.sh` (which runs `pip install --no-deps '
                'mmdeploy==1.3.1` and `pip install -r requirements/deploy.txt`), see '
                'docs/deploy.md; a plain `pip install mmdeploy` would downgrade protobuf to '
                '3.20.2 and onnx to 1.17')


class DeployError(RuntimeError):
    """mmdeploy is missing, a config does not fit, or the ONNX file does not match PyTorch."""


def import_mmdeploy():
    """Import mmdeploy, or raise :class:`DeployError` saying how to install it."""
    try:
        import mmdeploy
    except ImportError as e:
        raise DeployError(f'mmdeploy is not installed ({e}); {INSTALL_HINT}') from None
    if not str(mmdeploy.__version__).startswith('1.3.'):
        warnings.warn(f'mmdeploy {mmdeploy.__version__} found; mmdms is tested with 1.3.1')
    return mmdeploy


@contextlib.contextmanager
def torchscript_onnx_exporter():
    """Within the block ``torch.onnx.export`` defaults to ``dynamo=False`` (see module doc).

    Explicit ``dynamo=`` arguments are respected; torch versions without the argument are left
    alone. Tracer warnings (constant shapes in a static export) are silenced.
    """
    original = torch.onnx.export
    if 'dynamo' not in inspect.signature(original).parameters:
        yield
        return

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return original(*args, **kwargs)

    torch.onnx.export = export
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
            warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export')
            yield
    finally:
        torch.onnx.export = original


def _ir_key(deploy_cfg: Config) -> str:
    return 'onnx_config' if 'onnx_config' in deploy_cfg else 'ir_config'


def load_deploy_config(deploy_cfg: Union[str, Config]) -> Config:
    """Load a deploy config and check the fields torch2onnx and our verification need."""
    if isinstance(deploy_cfg, str):
        if not osp.isfile(deploy_cfg):
            raise DeployError(f'deploy config {deploy_cfg!r} does not exist (ours are in '
                              'configs/deploy/)')
        name = deploy_cfg
        deploy_cfg = Config.fromfile(deploy_cfg)
    else:
        name = 'the deploy config'
        deploy_cfg = copy.deepcopy(deploy_cfg)
    problems = []
    ir = deploy_cfg.get('onnx_config', deploy_cfg.get('ir_config'))
    if not isinstance(ir, dict):
        problems.append('no onnx_config (or ir_config) dict')
    else:
        if ir.get('type', 'onnx') != 'onnx':
            problems.append(f'onnx_config.type is {ir.get("type")!r}, expected "onnx"')
        for key in ('input_names', 'output_names'):
            if not ir.get(key):
                problems.append(f'onnx_config.{key} is missing')
    codebase = deploy_cfg.get('codebase_config', {})
    if codebase.get('type') not in SUPPORTED_CODEBASES:
        problems.append(f'codebase_config.type is {codebase.get("type")!r}, expected one of '
                        f'{sorted(SUPPORTED_CODEBASES)}')
    elif codebase.get('task') != SUPPORTED_CODEBASES[codebase['type']]:
        problems.append(f'codebase_config.task is {codebase.get("task")!r}, expected '
                        f'{SUPPORTED_CODEBASES[codebase["type"]]!r} for {codebase["type"]}')
    if not deploy_cfg.get('backend_config', {}).get('type'):
        problems.append('no backend_config.type')
    if problems:
        raise DeployError(f'{name} is not a usable mmdeploy deploy config: '
                          + '; '.join(problems))
    return deploy_cfg


def _model_scope(model_cfg: Config) -> Optional[str]:
    model = model_cfg.model
    if model.get('type') in ('mmdms.PrunedModel', 'PrunedModel'):
        model = model.architecture
    if isinstance(model, str):  # an architecture given as a config path
        return model.split('::')[0] if '::' in model else model_cfg.get('default_scope')
    scope = model.get('_scope_')
    if scope is None and '.' in str(model.get('type', '')):
        scope = str(model['type']).split('.')[0]
    return scope or model_cfg.get('default_scope')


def prepare_model_config(model_cfg: Config, codebase: str,
                         input_shape: Optional[Sequence[int]] = None) -> Config:
    """Adapt a (pruned) model config to mmdeploy 1.3.1's task processors (see module doc).

    Args:
        model_cfg: the model config, e.g. an exported ``pruned_config.py``.
        codebase: the deploy config's ``codebase_config.type``.
        input_shape: ``(width, height)`` as in mmdeploy's ``onnx_config.input_shape``.
    """
    cfg = copy.deepcopy(model_cfg)
    if 'model' not in cfg:
        raise DeployError('the model config has no `model`')
    scope = _model_scope(cfg)
    if scope in SUPPORTED_CODEBASES and scope != codebase:
        raise DeployError(f'the deploy config is for codebase {codebase!r} but the model is an '
                          f'{scope} model: use a {scope} deploy config (configs/deploy/)')
    if 'test_pipeline' not in cfg:
        raise DeployError('the model config has no `test_pipeline`; mmdeploy builds the example '
                          'input with it')
    if cfg.get('default_scope') != codebase:
        cfg.default_scope = codebase
    model = cfg.model
    if model.get('type') in ('mmdms.PrunedModel', 'PrunedModel') \
            and isinstance(model.get('architecture'), dict) \
            and 'data_preprocessor' in model.architecture and 'data_preprocessor' not in model:
        model.data_preprocessor = copy.deepcopy(model.architecture.data_preprocessor)
    if codebase == 'mmpretrain' and input_shape is not None:
        width, height = input_shape
        pipeline, resize_at = [], None
        for transform in cfg.test_pipeline:
            kind = str(transform.get('type', '')).split('.')[-1]
            if 'Resize' in kind or 'Crop' in kind:
                resize_at = len(pipeline) if resize_at is None else resize_at
                continue
            pipeline.append(transform)
        if resize_at is None:  # no geometric step: resize right after loading
            resize_at = 1 if pipeline and 'Load' in str(pipeline[0].get('type')) else 0
        pipeline.insert(resize_at, dict(type='Resize', scale=(int(width), int(height))))
        cfg.test_pipeline = pipeline
    return cfg


def _as_numpy(outputs) -> list:
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    return [t.detach().cpu().numpy() for t in outputs]


def compare_detections(ref_dets: np.ndarray, ref_labels: np.ndarray, dets: np.ndarray,
                       labels: np.ndarray, tie_tol: float = 1e-4,
                       per_class_cap: Optional[int] = None) -> Tuple[float, int]:
    """Largest difference between two end-to-end detection outputs, independent of row order.

    NMS and top-k cut-offs order near-equal scores arbitrarily (random-weight detectors give
    hundreds of scores within 1e-3), so rows are matched: every detection (box + score,
    ``(B, N, 5)``) of one side is paired with the closest detection of the same class on the
    other side (L-inf distance), in both directions, and the worst pair is returned. Rows
    whose score is within ``tie_tol`` of a cut-off of the other side -- its lowest score
    (``max_per_img`` / padding rows), or its lowest score for the row's class when that class
    reached ``per_class_cap`` (``max_output_boxes_per_class``) -- may legitimately be present
    on one side only; they are not compared, and their number is returned. A detection
    without a same-class partner gives ``inf``.

    Returns:
        ``(worst distance, number of cut-off rows left out)``
    """
    if ref_dets.shape[0] != dets.shape[0]:
        raise DeployError(f'batch sizes differ: {ref_dets.shape} vs {dets.shape}')
    worst, left_out = 0.0, 0
    for a, la, b, lb in zip(ref_dets, ref_labels, dets, labels):
        if len(a) == 0 and len(b) == 0:
            continue
        if len(a) == 0 or len(b) == 0:
            return float('inf'), left_out
        dist = np.abs(a[:, None, :].astype(np.float64) - b[None, :, :]).max(-1)
        dist[la[:, None] != lb[None, :]] = np.inf
        for rows, row_labels, nearest, other, other_labels in (
                (a, la, dist.min(1), b, lb), (b, lb, dist.min(0), a, la)):
            lowest = other[:, 4].min()
            for score, label, d in zip(rows[:, 4], row_labels, nearest):
                same = other[other_labels == label, 4]
                capped = per_class_cap is not None and len(same) >= per_class_cap
                if score <= (max(lowest, same.min()) if capped else lowest) + tie_tol:
                    left_out += 1
                else:
                    worst = max(worst, float(d))
    return worst, left_out


def _compare(reference: list, outputs: list, names: Sequence[str], detection: bool,
             per_class_cap: Optional[int] = None) -> dict:
    if len(reference) != len(outputs):
        raise DeployError(f'PyTorch gives {len(reference)} outputs, the ONNX file '
                          f'{len(outputs)}')
    diffs, scale, extra = {}, 1.0, {}
    pairs = list(zip(names, reference, outputs))
    if detection and list(names[:2]) == ['dets', 'labels']:
        (_, rd, od), (_, rl, ol) = pairs[:2]
        diffs['dets+labels'], cutoff_rows = compare_detections(rd, rl, od, ol,
                                                                   per_class_cap=per_class_cap)
        scale = max(scale, float(np.abs(rd).max(initial=0.0)))
        extra = dict(num_detections=int(rd.shape[0] * rd.shape[1]), cutoff_rows=cutoff_rows)
        pairs = pairs[2:]
    for name, ref, out in pairs:
        if ref.shape != out.shape:
            raise DeployError(f'output {name!r}: PyTorch shape {ref.shape}, ONNX {out.shape}')
        diffs[name] = float(np.abs(ref.astype(np.float64) - out).max(initial=0.0))
        scale = max(scale, float(np.abs(ref).max(initial=0.0)))
    max_diff = max(diffs.values())
    return dict(max_abs_diff=max_diff, output_scale=scale, rel_diff=max_diff / scale,
                per_output=diffs, **extra)


def verify_onnx(onnx_file: str, deploy_cfg: Config, model_cfg: Config, checkpoint: str,
                img, device: str = 'cpu') -> dict:
    """Run the ONNX file in onnxruntime (CPU) and the same model in PyTorch; compare.

    The PyTorch reference is the model mmdeploy exported: built by the task processor from the
    same config and checkpoint, patched, and run under the same ``RewriterContext`` (so its
    outputs are the graph's outputs -- softmax scores, or ``dets``/``labels`` after NMS), on
    the same preprocessed input. Classifiers are also compared with the stock, un-rewritten
    ``predict`` scores (``per_output['stock_pred_score']``), so a faulty rewriter would show;
    for detectors the rewriters replace the whole post-processing, whose stock version (mmcv
    NMS, rescaling) is not comparable value by value. With a dynamic batch axis a batch of two
    (the image and its mirror) is checked as well.
    """
    import onnxruntime as ort
    from mmdeploy.apis import build_task_processor
    from mmdeploy.core import RewriterContext, patch_model
    from mmdeploy.utils import IR, get_backend, get_input_shape, get_ir_config, is_dynamic_batch

    ir_cfg = get_ir_config(deploy_cfg)
    names = list(ir_cfg['output_names'])
    input_name = ir_cfg['input_names'][0]
    backend = get_backend(deploy_cfg).value
    detection = deploy_cfg.codebase_config.task == 'ObjectDetection'
    per_class_cap = deploy_cfg.codebase_config.get('post_processing', {}).get(
        'max_output_boxes_per_class')
    processor = build_task_processor(model_cfg, deploy_cfg, device)
    model = processor.build_pytorch_model(checkpoint)
    data, inputs = processor.create_input(
        img, get_input_shape(deploy_cfg), data_preprocessor=getattr(model, 'data_preprocessor',
                                                                    None))
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    samples = data['data_samples']
    batches = [(inputs, samples)]
    if is_dynamic_batch(deploy_cfg, input_name):
        batches.append((torch.cat([inputs, inputs.flip(-1)]), samples + copy.deepcopy(samples)))
    # classifiers: also the stock (un-rewritten) prediction, so a rewriter bug cannot hide
    stock = [None] * len(batches)
    if not detection:
        with torch.no_grad():
            stock = [np.stack([s.pred_score.cpu().numpy() for s in
                               model(x, copy.deepcopy(x_samples), mode='predict')])
                     for x, x_samples in batches]
    patched = patch_model(model, cfg=deploy_cfg, backend=backend, ir=IR.ONNX)
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    report = None
    for (x, x_samples), stock_scores in zip(batches, stock):
        with RewriterContext(cfg=deploy_cfg, backend=backend, ir=IR.ONNX,
                             opset=ir_cfg.get('opset_version', 11)), torch.no_grad():
            reference = _as_numpy(patched(x.cpu(), x_samples, mode='predict'))
        outputs = session.run(names, {input_name: x.cpu().numpy()})
        result = _compare(reference, outputs, names, detection, per_class_cap)
        if stock_scores is not None:
            if stock_scores.shape != outputs[0].shape:
                raise DeployError(f'the ONNX output has shape {outputs[0].shape}, the stock '
                                  f'prediction scores {stock_scores.shape}')
            stock_diff = float(np.abs(stock_scores.astype(np.float64) - outputs[0]).max())
            result['per_output']['stock_pred_score'] = stock_diff
            result['max_abs_diff'] = max(result['max_abs_diff'], stock_diff)
            result['rel_diff'] = result['max_abs_diff'] / result['output_scale']
        result['input_shape'] = list(x.shape)
        if report is None:
            report = dict(result, output_shapes={n: list(o.shape) for n, o in
                                                 zip(names, outputs)})
        else:
            report['batch2'] = result
            for key in ('max_abs_diff', 'rel_diff'):
                report[key] = max(report[key], result[key])
    report['onnx_ops'] = sorted({node.op_type for node in _onnx_nodes(onnx_file)})
    return report


def _onnx_nodes(onnx_file: str):
    import onnx
    return onnx.load(onnx_file, load_external_data=False).graph.node


def _example_image(img, input_shape: Optional[Sequence[int]], seed: int = 0):
    """``img`` if given (a path or an HxWx3 uint8 array), else a seeded random image of the
    deploy input size (``input_shape`` is (width, height)) or 640x640.

    Square by default: a letterboxed image has constant padding stripes, where an untrained
    detector gives many *exactly* equal scores and NMS keeps an arbitrary one of them.
    """
    if img is not None:
        if isinstance(img, str) and not osp.isfile(img):
            raise DeployError(f'--img {img!r} does not exist')
        return img
    width, height = input_shape if input_shape is not None else (640, 640)
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)


def mmdeploy_torch2onnx(deploy_cfg: Union[str, Config],
                        model_cfg: Union[str, Config],
                        checkpoint: str,
                        out: str,
                        img=None,
                        shape: Optional[Sequence[int]] = None,
                        device: str = 'cpu',
                        verify: bool = True,
                        rtol: float = 1e-4) -> dict:
    """Convert ``model_cfg`` + ``checkpoint`` with ``mmdeploy.apis.torch2onnx`` into ``out``.

    Args:
        deploy_cfg: an mmdeploy deploy config (see ``configs/deploy/``).
        model_cfg: a model config; an exported ``pruned_config.py`` (``mmdms.PrunedModel``)
            or any stock mmpretrain/mmdet/mmyolo config.
        checkpoint: the weights (``pruned.pth`` for an export).
        out: the ``.onnx`` file to write. mmdeploy writes into a temporary folder beside it;
            the file is moved into place only after the check passed, so a failure leaves
            nothing behind.
        img: the example input (image path or HxWx3 uint8 array); default: a seeded random
            image of the export size.
        shape: ``(height, width)`` for a static export (overrides the deploy config's
            ``input_shape``).
        verify: compare onnxruntime with PyTorch and fail if ``rel_diff > rtol``.
        rtol: accepted ``max|onnxruntime - pytorch| / max(1, max|pytorch output|)``.

    Returns:
        dict with ``onnx`` (the path) and, when verified, ``max_abs_diff``, ``output_scale``,
        ``rel_diff``, ``per_output``, ``input_shape``, ``output_shapes``, ``onnx_ops``.
    """
    import_mmdeploy()
    from mmdeploy.apis import torch2onnx
    from mmdeploy.utils import get_input_shape

    from mmdms.utils import register_all_modules, setup_torch_load
    register_all_modules(init_default_scope=False)  # mmdms.PrunedModel in the MODELS tree
    setup_torch_load()
    deploy_cfg = load_deploy_config(deploy_cfg)
    if isinstance(model_cfg, str):
        if not osp.isfile(model_cfg):
            raise DeployError(f'model config {model_cfg!r} does not exist')
        model_cfg = Config.fromfile(model_cfg)
    if not osp.isfile(checkpoint):
        raise DeployError(f'checkpoint {checkpoint!r} does not exist')
    if shape is not None:
        if len(shape) != 2 or min(shape) <= 0:
            raise DeployError(f'shape must be (height, width), got {tuple(shape)}')
        deploy_cfg[_ir_key(deploy_cfg)]['input_shape'] = [int(shape[1]), int(shape[0])]
    input_shape = get_input_shape(deploy_cfg)
    model_cfg = prepare_model_config(model_cfg, deploy_cfg.codebase_config.type, input_shape)
    img = _example_image(img, input_shape)
    if not out.endswith('.onnx'):
        raise DeployError(f'--out {out!r} should end with .onnx')
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix='.mmdeploy-', dir=out_dir)
    try:
        with torchscript_onnx_exporter():
            torch2onnx(img, work_dir, 'end2end.onnx', deploy_cfg, model_cfg, checkpoint,
                       device=device)
        onnx_file = osp.join(work_dir, 'end2end.onnx')
        if not osp.isfile(onnx_file):
            raise DeployError('mmdeploy torch2onnx finished without writing an ONNX file')
        report = dict(onnx=out)
        if verify:
            report.update(verify_onnx(onnx_file, deploy_cfg, model_cfg, checkpoint, img,
                                      device))
            if not report['rel_diff'] <= rtol:
                hint = ''
                if 'dets+labels' in report['per_output']:
                    hint = ('. Detections are matched by class, box and score; an untrained '
                            'detector has many (near-)equal scores, e.g. in the letterbox '
                            'padding, and NMS then keeps different boxes for rounding reasons '
                            '-- check with trained weights or an unpadded --img, or pass '
                            '--no-verify')
                raise DeployError(
                    f'onnxruntime differs from PyTorch: max |diff| {report["max_abs_diff"]:.3g} '
                    f'= {report["rel_diff"]:.3g} of the output scale > rtol {rtol} '
                    f'(per output: {report["per_output"]}); nothing was written{hint}')
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(onnx_file, 0o666 & ~umask)
        os.replace(onnx_file, out)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return report
