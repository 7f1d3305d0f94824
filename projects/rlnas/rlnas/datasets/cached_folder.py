"""An image-folder dataset decoded once into one uint8 array (cached on disk).

On CPU, decoding 50k small JPEGs every epoch costs as much as a small network's forward; this
reads ``data_root/<class>/*.jpg`` once, keeps the images in memory and can take a class-balanced
slice of them (e.g. 500 per class for training and the next 100 per class as a held-out split).
"""
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.dataset import BaseDataset

from ..registry import DATASETS
from ..utils import atomic_write_npz

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def _decode_folder(data_root: str):
    """Return (images NxHxWx3 uint8 BGR, labels, classes, relative paths), classes sorted."""
    import cv2
    classes = sorted(d for d in os.listdir(data_root) if osp.isdir(osp.join(data_root, d)))
    if not classes:
        raise FileNotFoundError(f'{data_root} has no class sub-folders')
    images, labels, paths = [], [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(osp.join(data_root, name))
                       if f.lower().endswith(IMG_EXTENSIONS))
        for f in files:
            img = cv2.imread(osp.join(data_root, name, f), cv2.IMREAD_COLOR)
            if img is None:
                raise IOError(f'cannot decode {osp.join(data_root, name, f)}')
            images.append(img)
            labels.append(label)
            paths.append(f'{name}/{f}')
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f'{data_root}: images differ in size {sorted(shapes)[:3]}; '
                         'CachedImageFolder needs one size')
    return np.stack(images), np.asarray(labels, np.int64), classes, paths


def load_folder_cache(data_root: str, cache_file: Optional[str] = None) -> dict:
    """Decode ``data_root`` (or read ``cache_file`` when it exists and matches)."""
    if cache_file and osp.isfile(cache_file):
        with np.load(cache_file, allow_pickle=False) as npz:  # no pickle: plain arrays only
            cache = {k: npz[k] for k in npz.files}
        if str(cache['data_root']) == osp.abspath(data_root):
            cache['classes'] = [str(c) for c in cache['classes']]
            cache['paths'] = [str(p) for p in cache['paths']]
            return cache
    images, labels, classes, paths = _decode_folder(data_root)
    cache = dict(data_root=osp.abspath(data_root), images=images, labels=labels,
                 classes=classes, paths=paths)
    if cache_file:
        atomic_write_npz(cache_file, data_root=np.array(cache['data_root']), images=images,
                         labels=labels, classes=np.array(classes), paths=np.array(paths))
    return cache


@DATASETS.register_module()
class CachedImageFolder(BaseDataset):
    """``data_root/<class>/<image>`` with images held in memory.

    Args:
        data_root: folder with one sub-folder per class (sorted names = class indices, as
            mmpretrain's CustomDataset).
        num_per_class: keep this many images per class (None: all), taken in file-name order
            starting at ``offset_per_class``; disjoint slices give disjoint splits.
        offset_per_class: first image index kept in every class.
        cache_file: ``.npz`` where to keep the decoded arrays (created on first use).
        pipeline: transforms; they receive ``img`` (HxWx3 BGR uint8) as LoadImageFromFile gives.
    """

    def __init__(self, data_root: str, num_per_class: Optional[int] = None,
                 offset_per_class: int = 0, cache_file: Optional[str] = None,
                 pipeline: List = (), test_mode: bool = False, lazy_init: bool = False):
        self.num_per_class = num_per_class
        self.offset_per_class = offset_per_class
        self.cache_file = cache_file
        self._images = None
        super().__init__(data_root=data_root, pipeline=list(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, serialize_data=False)

    def load_data_list(self) -> List[dict]:
        cache = load_folder_cache(self.data_root, self.cache_file)
        self._metainfo['classes'] = tuple(cache['classes'])
        labels = cache['labels']
        keep = []
        for label in range(len(cache['classes'])):
            idx = np.flatnonzero(labels == label)[self.offset_per_class:]
            if self.num_per_class is not None:
                if len(idx) < self.num_per_class:
                    raise ValueError(
                        f'class {cache["classes"][label]!r} has {len(idx)} images after offset '
                        f'{self.offset_per_class}, fewer than num_per_class={self.num_per_class}')
                idx = idx[:self.num_per_class]
            keep.append(idx)
        keep = np.sort(np.concatenate(keep))
        self._images = cache['images'][keep]
        return [
            dict(gt_label=int(labels[i]), img_index=n, img_path=cache['paths'][i])
            for n, i in enumerate(keep)
        ]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self._images[info['img_index']]
        info.update(img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info

    def get_gt_labels(self) -> np.ndarray:
        return np.array([d['gt_label'] for d in self.data_list], np.int64)
