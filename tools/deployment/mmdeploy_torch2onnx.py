"""Convert an exported (pruned) model to ONNX with mmdeploy and check it with onnxruntime.

    python tools/deployment/mmdeploy_torch2onnx.py DEPLOY_CFG MODEL_CFG CHECKPOINT \
        --out FILE.onnx [--img IMAGE | --shape H W] [--device cpu] [--rtol 1e-4] [--no-verify]

MODEL_CFG is typically the ``pruned_config.py`` written by ``tools/export_pruned.py`` (its model
is ``mmdms.PrunedModel``, which builds the original class physically pruned, so mmdeploy's
rewriters apply) and CHECKPOINT the ``pruned.pth`` beside it; stock mmpretrain/mmyolo configs
work too. DEPLOY_CFG is an mmdeploy deploy config, e.g. ``configs/deploy/
classification_onnxruntime_static.py`` or ``configs/deploy/yolov8_onnxruntime_static.py``.

Unlike ``pytorch2onnx.py`` (raw network outputs) this produces mmdeploy's deployable graph:
softmax scores for classifiers, decoded boxes + NMS (``dets``, ``labels``) for detectors. The
file is checked against PyTorch running the same rewritten model on the same input (detections
are matched regardless of order, see ``mmdms.deploy.compare_detections``) and moved to
``--out`` only if ``max|diff| / max(1, max|output|) <= --rtol``; a failure writes nothing.
Why the wrappers around mmdeploy are needed (torch >= 2.9, protobuf pin, ...):
``mmdms/deploy/mmdeploy_export.py`` and docs/deploy.md.
"""
import argparse
import json
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(
        description='mmdeploy torch2onnx for (pruned) models, verified with onnxruntime')
    parser.add_argument('deploy_cfg', help='mmdeploy deploy config (configs/deploy/*.py)')
    parser.add_argument('model_cfg', help='model config, e.g. an exported pruned_config.py')
    parser.add_argument('checkpoint', help='weights, e.g. the exported pruned.pth')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--img', help='example image for tracing (default: a seeded random '
                       'image of the export size)')
    group.add_argument('--shape', type=int, nargs='+', metavar='N',
                       help='static input size as H W (or 1 3 H W); overrides the deploy '
                       "config's input_shape")
    parser.add_argument('--device', default='cpu', help='device for building and tracing')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='accepted max|onnxruntime - pytorch| / max(1, max|output|)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the onnxruntime comparison (e.g. for non-ORT backends)')
    parser.add_argument('--report', help='also write the verification report as JSON here')
    return parser.parse_args()


def main():
    args = parse_args()
    shape = None
    if args.shape is not None:
        if len(args.shape) == 4 and args.shape[:2] == [1, 3]:
            shape = args.shape[2:]
        elif len(args.shape) == 2:
            shape = args.shape
        else:
            sys.exit(f'--shape takes H W or 1 3 H W (mmdeploy traces one image), got '
                     f'{args.shape}')
    from mmdms.deploy import DeployError, mmdeploy_torch2onnx
    start = time.time()
    try:
        report = mmdeploy_torch2onnx(args.deploy_cfg, args.model_cfg, args.checkpoint, args.out,
                                     img=args.img, shape=shape, device=args.device,
                                     verify=not args.no_verify, rtol=args.rtol)
    except DeployError as e:
        print(f'mmdeploy torch2onnx failed: {e}', file=sys.stderr)
        sys.exit(1)
    report['seconds'] = round(time.time() - start, 2)
    if 'rel_diff' in report:
        print(f'{args.out}: input {report["input_shape"]}, outputs {report["output_shapes"]}; '
              f'max |onnxruntime - pytorch| = {report["max_abs_diff"]:.3g} '
              f'({report["rel_diff"]:.2e} of the output scale {report["output_scale"]:.3g}) '
              f'in {report["seconds"]} s')
    else:
        print(f'{args.out}: written (not verified) in {report["seconds"]} s')
    if args.report:
        from mmdms.utils import atomic_write_text
        atomic_write_text(args.report, json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
