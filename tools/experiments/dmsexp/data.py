"""Class-balanced annotation files for an image-folder dataset (``<root>/<subset>/<class>/``).

mmpretrain's ``CustomDataset`` reads ``ann_file`` lines ``<class>/<file> <label>``; labels
follow the sorted class folders, as when it scans the folders itself.
"""
import os
import os.path as osp
from typing import List, Optional, Tuple

from mmdms.utils.fileio import atomic_write_text

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def class_folders(data_root: str, subset: str) -> List[str]:
    folder = osp.join(data_root, subset)
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder} does not exist: prepare the data first '
                                '(tools/dataset_converters/prepare_data.py)')
    classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
    if not classes:
        raise FileNotFoundError(f'{folder} has no class folders')
    return classes


def write_split(data_root: str, subset: str, per_class: Optional[int],
                out_dir: str) -> Tuple[str, List[str]]:
    """Write ``<out_dir>/<subset>_<per_class|all>.txt`` with the first ``per_class`` images
    (sorted names) of every class, or all of them; returns the path and the class names."""
    classes = class_folders(data_root, subset)
    lines = []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(osp.join(data_root, subset, name))
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        if per_class is not None:
            if len(files) < per_class:
                raise ValueError(f'{subset}/{name} has {len(files)} images, fewer than the '
                                 f'{per_class} per class asked for')
            files = files[:per_class]
        lines += [f'{name}/{f} {label}' for f in files]
    path = osp.join(out_dir, f'{subset}_{per_class or "all"}.txt')
    text = '\n'.join(lines) + '\n'
    if not osp.isfile(path) or open(path).read() != text:
        atomic_write_text(path, text)
    return path, classes
