# As yolov8_onnxruntime_static.py, with dynamic batch and image size (any multiple of 32).
_base_ = ['./yolov8_onnxruntime_static.py']

onnx_config = dict(
    input_shape=None,
    dynamic_axes={
        'input': {
            0: 'batch',
            2: 'height',
            3: 'width'
        },
        'dets': {
            0: 'batch',
            1: 'num_dets'
        },
        'labels': {
            0: 'batch',
            1: 'num_dets'
        }
    })
