"""The pinned OpenMMLab stack works inside the project environment: imports, compiled mmcv ops,
and real mmpretrain / mmyolo models built from their shipped configs run forward."""
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from mmdms.utils import load_config


def test_stack_imports_and_compiled_ops():
    import mmdet  # noqa: F401
    import mmpretrain  # noqa: F401
    import mmyolo  # noqa: F401
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def _build(scope, config_path):
    cfg = load_config(config_path)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
    return revert_sync_batchnorm(model).eval()


def test_mmpretrain_resnet18_forward():
    import mmpretrain.models  # noqa: F401  (registers into the mmpretrain scope)
    model = _build('mmpretrain', 'mmpretrain::resnet/resnet18_8xb32_in1k.py')
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512


def test_mmyolo_yolov8n_forward():
    import mmyolo.models  # noqa: F401
    model = _build('mmyolo', 'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py')
    with torch.no_grad():
        cls_scores, bbox_preds = model(torch.randn(1, 3, 160, 160), mode='tensor')
    assert [tuple(t.shape) for t in cls_scores] == [(1, 80, 20, 20), (1, 80, 10, 10), (1, 80, 5, 5)]
    assert [t.shape[1] for t in bbox_preds] == [4, 4, 4]
    assert 3.0e6 < sum(p.numel() for p in model.parameters()) < 3.3e6  # YOLOv8-n: 3.15M
