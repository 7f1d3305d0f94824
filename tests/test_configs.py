"""Every shipped DMS config builds its algorithm, and every retrain config rebuilds the original
class from a structure JSON (no tracing)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mmdms_testing import REPO
from mmdms.export import save_structure
from mmdms.utils import register_all_modules

register_all_modules(init_default_scope=False)
PAIRS = [
    ('resnet_dms_cifar10.py', 'resnet_dms_cifar10_retrain.py', 'ImageClassifier'),
    ('resnet50_dms_in1k.py', 'resnet50_dms_in1k_retrain.py', 'ImageClassifier'),
    ('deit-tiny_dms_in1k.py', 'deit-tiny_dms_in1k_retrain.py', 'ImageClassifier'),
    ('yolov8n_dms.py', 'yolov8n_dms_retrain.py', 'YOLODetector'),
]


def build(cfg):
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdms')):
        return ROOT_MODELS.build(cfg.model)


@pytest.mark.parametrize('search,retrain,cls', PAIRS)
def test_search_and_retrain_configs(search, retrain, cls, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dms', search))
    if search.startswith('yolov8'):
        cfg.model.input_shape = (1, 3, 160, 160)  # tracing cost only; the graph is the same
    else:
        cfg.model.input_shape = (1, 3, 64, 64) if 'in1k' in search else (1, 3, 32, 32)
    algorithm = build(cfg)
    assert type(algorithm.architecture).__name__ == cls
    assert len(algorithm.mutator.channel_units) > 5
    assert 0 < cfg.model.target_ratio <= 1
    g = torch.Generator().manual_seed(0)
    for unit in algorithm.mutator.units:
        unit.keep(max(unit.min_kept, round(0.6 * unit.num_elements)),
                  torch.rand(unit.num_elements, generator=g))
    structure_file = str(tmp_path / 'structure.json')
    save_structure(algorithm.structure(), structure_file)

    retrain_cfg = Config.fromfile(osp.join(REPO, 'configs', 'dms', retrain))
    retrain_cfg.model.structure = structure_file
    pruned = build(retrain_cfg)
    assert type(pruned).__name__ == cls
    full = sum(p.numel() for p in algorithm.architecture.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < 0.8 * full
    exported = algorithm.export_architecture()
    assert set(pruned.state_dict()) == set(exported.state_dict())
