import importlib
import sys
import os.path as osp

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def tiny_model_cfg(learnable=True, init_drop_rate=0.1, widths=(4, 8, 8)):
    return dict(
        type='pgnas.PGNASClassifier',
        num_train_samples=1000,
        length_scale=0.7,
        backbone=dict(
            type='pgnas.SupNetR',
            stage_channels=widths,
            stage_blocks=(1, 1, 1),
            stem_channels=widths[0],
            dropout_cfg=dict(init_drop_rate=init_drop_rate, temperature=0.2,
                             learnable=learnable, eval_mode='mean')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=widths[-1],
                  loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10,
                               mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3]))


def build(cfg):
    importlib.import_module('projects.pgnas.pgnas')  # registers the pgnas scope
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    return MODELS.build(cfg)


def warm_up_bn(model, steps=3, seed=0):
    """Give batch norms non-trivial running statistics (train-mode forwards)."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(16, 3, 32, 32) * 2 + 0.5, mode='tensor')
    model.eval()
    return model


@pytest.fixture
def build_tiny():
    """``build_tiny(**tiny_model_cfg kwargs)`` -> a freshly built tiny supernet."""
    return lambda **kwargs: build(tiny_model_cfg(**kwargs))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build(tiny_model_cfg())
