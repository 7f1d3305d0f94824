# ONNX export settings shared by our deploy configs (as mmdeploy 1.3.1's
# configs/_base_/onnx_config.py).
# opset 11: what mmdeploy's rewriters and symbolic functions target. optimize=False: mmdeploy's
# ONNX optimizer needs its TorchScript extension, which the pip wheel does not build (with True
# it only logs "Can not optimize model"); onnxruntime optimises the graph itself when it loads.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=False)
