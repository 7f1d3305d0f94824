"""Deployment of exported (pruned) models with mmdeploy.

Importing this package does not import mmdeploy; the functions do, and raise
:class:`DeployError` with install instructions when it is missing.
"""
from .mmdeploy_export import (SUPPORTED_CODEBASES, DeployError, compare_detections,
                              import_mmdeploy, load_deploy_config, mmdeploy_torch2onnx,
                              prepare_model_config, torchscript_onnx_exporter, verify_onnx)

__all__ = [
    'DeployError', 'SUPPORTED_CODEBASES', 'import_mmdeploy', 'load_deploy_config',
    'prepare_model_config', 'torchscript_onnx_exporter', 'mmdeploy_torch2onnx', 'verify_onnx',
    'compare_detections'
]
