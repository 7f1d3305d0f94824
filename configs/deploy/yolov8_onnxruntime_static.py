# mmyolo detectors (YOLOv5/v6/v7/v8, RTMDet) -> end-to-end ONNX (decode + NMS) for
# onnxruntime, static 640x640 input; modelled on mmyolo's configs/deploy/
# detection_onnxruntime_static.py. Outputs: dets (1, K, 5) = x1, y1, x2, y2, score in network
# input pixels, labels (1, K); NMS is the standard ONNX NonMaxSuppression op. The model's
# test_cfg wins over post_processing where both say something (score_thr, nms.iou_threshold,
# max_per_img: K = 300 for YOLOv8). The rewriters live in mmyolo.deploy (imported through
# `module`).
_base_ = ['./_base_/onnx_config.py', './_base_/backends/onnxruntime.py']

onnx_config = dict(output_names=['dets', 'labels'], input_shape=[640, 640])
codebase_config = dict(
    type='mmyolo',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1),
    module=['mmyolo.deploy'])
