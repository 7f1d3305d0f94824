# mmpretrain classifiers -> ONNX (softmax scores, shape (1, num_classes)) for onnxruntime.
# Static 224x224 input; tools/deployment/mmdeploy_torch2onnx.py --shape H W overrides the size
# (for mmpretrain it also replaces the test pipeline's resize/crop by one Resize to H x W).
_base_ = ['./_base_/onnx_config.py', './_base_/backends/onnxruntime.py']

onnx_config = dict(input_shape=[224, 224])  # (width, height), mmdeploy's convention
codebase_config = dict(type='mmpretrain', task='Classification')
