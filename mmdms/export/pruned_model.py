"""``PrunedModel``: build a model from its original config plus a structure JSON.

Registered as a *builder function* in ``MODELS``, so a config can say::

    model = dict(type='mmdms.PrunedModel', architecture=<original model cfg>,
                 structure='structure.json')

and ``MODELS.build`` returns an instance of the **original class** (ImageClassifier,
YOLODetector, ...), physically smaller -- what tools/test.py, retraining and deployment load.
No tracing happens here.
"""
import os.path as osp
from typing import Union

from mmengine.model import revert_sync_batchnorm

from mmdms.registry import MODELS
from .structure import apply_structure, load_structure


@MODELS.register_module(name='PrunedModel')
def build_pruned_model(architecture: Union[str, dict], structure: Union[str, dict],
                       revert_sync_bn: bool = False, **kwargs):
    """Build ``architecture`` and prune it to ``structure`` (a dict or a JSON path)."""
    from mmdms.models.algorithms.dms_algorithm import build_architecture
    if isinstance(architecture, dict):
        architecture = dict(architecture, **kwargs) if kwargs else architecture
    model = build_architecture(architecture)
    if revert_sync_bn:
        model = revert_sync_batchnorm(model)
    if isinstance(structure, str) and not osp.isfile(structure):
        raise FileNotFoundError(f'structure file {structure!r} not found; export writes it '
                                'next to the pruned config (paths are relative to the cwd)')
    return apply_structure(model, load_structure(structure))
