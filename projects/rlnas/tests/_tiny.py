"""A tiny search space and in-memory dataset shared by the tests."""
import os.path as osp

import numpy as np
from mmengine.dataset import BaseDataset

from projects.rlnas.rlnas.registry import DATASETS, MODELS

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))

TINY_OPS = dict(
    id=dict(type='IdentityOp'),
    mb3k3=dict(type='InvertedResidual', expand_ratio=3, kernel_size=3),
    mb2k5=dict(type='InvertedResidual', expand_ratio=2, kernel_size=5),
    avg3=dict(type='PoolOp', kind='avg', kernel_size=3),
    none=dict(type='ZeroOp'))


def tiny_supernet_cfg(choices=('id', 'mb3k3', 'mb2k5'), **kwargs):
    layers = [dict(out_channels=8, stride=2, choices=['id', 'mb3k3', 'mb2k5']),
              dict(out_channels=8, stride=1, choices=list(choices)),
              dict(out_channels=16, stride=2, choices=['id', 'mb3k3', 'mb2k5']),
              dict(out_channels=16, stride=1, choices=list(choices))]
    return dict(type='rlnas.SinglePathSupernet', layers=layers, candidate_ops=TINY_OPS,
                stem=dict(out_channels=8, kernel_size=3, stride=1), head_channels=32, **kwargs)


def tiny_model(choices=('id', 'mb3k3', 'mb2k5'), num_classes=4, fixed_arch=None, **kwargs):
    # mmengine's plain preprocessor keeps mmpretrain (slow to import) out of the fast tests
    kwargs.setdefault('data_preprocessor', dict(type='BaseDataPreprocessor'))
    return MODELS.build(dict(type='rlnas.SPOSClassifier',
                             backbone=tiny_supernet_cfg(choices, fixed_arch=fixed_arch),
                             num_classes=num_classes, **kwargs))


def pack(info):
    """Stand-in for mmpretrain's PackInputs in the fast tests."""
    return dict(inputs=info['img'], label=info['gt_label'])


@DATASETS.register_module(force=True)
class TinyImages(BaseDataset):
    """``num`` random 16x16 images, labels i % num_classes."""
    METAINFO = dict(classes=('a', 'b', 'c', 'd'))

    def __init__(self, num=40, pipeline=(), **kwargs):
        self.num = num
        super().__init__(pipeline=list(pipeline), **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        return [dict(img=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                     gt_label=i % len(self.METAINFO['classes'])) for i in range(self.num)]
