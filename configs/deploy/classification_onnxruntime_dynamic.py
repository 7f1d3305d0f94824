# mmpretrain classifiers -> ONNX with a dynamic batch axis (the spatial size stays what the
# model config's test pipeline produces, 224x224 for ImageNet configs: ViT/DeiT position
# embeddings are tied to it).
_base_ = ['./_base_/onnx_config.py', './_base_/backends/onnxruntime.py']

onnx_config = dict(dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})
codebase_config = dict(type='mmpretrain', task='Classification')
