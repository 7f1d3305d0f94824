"""CIFAR-10 from the prepared JPEG folders, decoded once into a uint8 cache for CPU speed.

JPEG decoding plus a per-sample mmcv pipeline costs more than the tiny supernet on a CPU, so
the images are decoded once into ``(N, 3, 32, 32)`` uint8 tensors (cached as ``.pt``) and
augmented with tensor ops. Class-balanced subsets and the held-out split are carved by seed,
so the supernet never sees the images its candidates are scored on.
"""
import os
import os.path as osp
import tempfile
from typing import List, Optional

import numpy as np
import torch
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from ..registry import DATASETS

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png')


def _read_classes(data_root: str) -> List[str]:
    path = osp.join(data_root, 'meta', 'classes.txt')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: prepare CIFAR-10 first '
                                '(tools/dataset_converters)')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _decode_split(data_root: str, split: str, classes: List[str]):
    from PIL import Image
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = osp.join(data_root, split, name)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{folder} not found')
        for fname in sorted(os.listdir(folder)):
            if fname.lower().endswith(_IMAGE_EXTS):
                with Image.open(osp.join(folder, fname)) as img:
                    images.append(np.asarray(img.convert('RGB'), dtype=np.uint8))
                labels.append(label)
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels, dtype=torch.long)


def load_cached_split(data_root: str, split: str, cache_dir: str):
    """``(images uint8 (N,3,H,W), labels, classes)`` of a split, decoding it on first use."""
    classes = _read_classes(data_root)
    cache = osp.join(cache_dir, f'cifar10_{split}_uint8.pt')
    if osp.isfile(cache):
        blob = torch.load(cache, weights_only=True)
        if blob['classes'] == classes:
            return blob['images'], blob['labels'], classes
    images, labels = _decode_split(data_root, split, classes)
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix='.pt.tmp')
    os.close(fd)
    try:
        torch.save(dict(images=images, labels=labels, classes=classes), tmp)
        os.replace(tmp, cache)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return images, labels, classes


def balanced_split_indices(labels: torch.Tensor, num_classes: int, seed: int,
                           heldout_per_class: int, train_per_class: Optional[int],
                           heldout_extra_per_class: int = 0):
    """Per class, shuffle by ``seed``; the first ``heldout_per_class`` go to held-out, the
    next ``train_per_class`` (all the rest when None) to train, and then the next
    ``heldout_extra_per_class`` to held-out as well. Disjoint by construction.

    The extra block sits *after* the train slice, so enlarging the held-out split this way
    leaves the training subset (and any supernet trained on it) unchanged.
    """
    if heldout_extra_per_class and train_per_class is None:
        raise ValueError('heldout_extra_per_class needs train_per_class (the extra block '
                         'comes after the train slice)')
    generator = torch.Generator().manual_seed(seed)
    train, heldout = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        need = heldout_per_class + (train_per_class or 0) + heldout_extra_per_class
        if need > idx.numel():
            raise ValueError(f'class {c} has {idx.numel()} images, fewer than '
                             f'{heldout_per_class} held-out + {train_per_class} train + '
                             f'{heldout_extra_per_class} extra held-out')
        heldout.append(idx[:heldout_per_class])
        rest = idx[heldout_per_class:]
        if train_per_class is None:
            train.append(rest)
        else:
            train.append(rest[:train_per_class])
            heldout.append(rest[train_per_class:train_per_class + heldout_extra_per_class])
    return torch.cat(train).sort().values, torch.cat(heldout).sort().values


@DATASETS.register_module()
class CachedCIFAR10(Dataset):
    """CIFAR-10 samples as mmpretrain expects them: ``dict(inputs, data_samples)``.

    Args:
        data_root (str): folder with ``{train,test}/<class>/*.jpg`` and
            ``meta/classes.txt``.
        split (str): ``'train'`` or ``'test'`` folder.
        subset (str): ``'all'``, or for the train folder ``'train'`` / ``'heldout'``
            (the class-balanced carve-out of :func:`balanced_split_indices`).
        train_per_class (int, optional): train images per class (None: all not held out).
        heldout_per_class (int): held-out images per class carved from the train folder.
        heldout_extra_per_class (int): more held-out images per class, taken after the
            train slice (so the training subset does not change). Defaults to 0.
        test_per_class (int, optional): class-balanced subset of ``subset='all'``.
        split_seed (int): seed of the carving.
        augment (bool): random 4-pixel-padded crop + horizontal flip.
        cache_dir (str): where the decoded uint8 tensors live.
    """

    def __init__(self,
                 data_root: str = 'data/cifar10',
                 split: str = 'train',
                 subset: str = 'all',
                 train_per_class: Optional[int] = None,
                 heldout_per_class: int = 0,
                 heldout_extra_per_class: int = 0,
                 test_per_class: Optional[int] = None,
                 split_seed: int = 0,
                 augment: bool = False,
                 cache_dir: str = 'work_dirs/pgnas/cache'):
        if subset not in ('all', 'train', 'heldout'):
            raise ValueError(f"subset must be 'all', 'train' or 'heldout', got {subset!r}")
        images, labels, classes = load_cached_split(data_root, split, cache_dir)
        if subset == 'all':
            if test_per_class is not None:
                index, _ = balanced_split_indices(labels, len(classes), split_seed, 0,
                                                  test_per_class)
            else:
                index = torch.arange(labels.numel())
        else:
            train, heldout = balanced_split_indices(labels, len(classes), split_seed,
                                                    heldout_per_class, train_per_class,
                                                    heldout_extra_per_class)
            index = train if subset == 'train' else heldout
            if index.numel() == 0:
                raise ValueError(f'subset {subset!r} is empty: set heldout_per_class')
        self.images = images[index]
        self.labels = labels[index]
        self.augment = augment
        self.metainfo = dict(classes=tuple(classes))

    def __len__(self) -> int:
        return self.labels.numel()

    def _augment(self, img: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2, )).tolist()
        img = padded[:, top:top + img.shape[1], left:left + img.shape[2]]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return img.contiguous()

    def __getitem__(self, idx: int) -> dict:
        img = self.images[idx]
        if self.augment:
            img = self._augment(img)
        sample = DataSample().set_gt_label(int(self.labels[idx]))
        return dict(inputs=img, data_samples=sample)
