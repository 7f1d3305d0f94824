"""Small helpers: atomic writes and locating the shared benchmark data."""
import json
import os
import os.path as osp
from typing import Any

import torch

from mmdms.utils import atomic_write

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


def _atomic(path: str, write) -> None:
    """``write(binary file)`` through :func:`mmdms.utils.atomic_write` (temp file + rename)."""

    def to_file(tmp):
        with open(tmp, 'wb') as f:
            write(f)

    atomic_write(path, to_file)


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` atomically."""
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_npz(path: str, **arrays) -> None:
    """``np.savez`` atomically (``path`` should end in .npz)."""
    import numpy as np
    _atomic(path, lambda f: np.savez(f, **arrays))


def atomic_write_text(text: str, path: str) -> None:
    _atomic(path, lambda f: f.write(text.encode('utf-8')))


def atomic_write_json(obj: Any, path: str) -> None:
    atomic_write_text(json.dumps(obj, indent=1) + '\n', path)


def shared_data_path(filename: str) -> str:
    """``$MMDMS_SHARED_DATA/filename``, else ``<repo root>/../shared/data/filename``."""
    folder = os.environ.get('MMDMS_SHARED_DATA') or osp.join(REPO_ROOT, '..', 'shared', 'data')
    path = osp.normpath(osp.join(folder, filename))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{filename} not found in {osp.normpath(folder)}; set '
                                'MMDMS_SHARED_DATA to the folder that holds it')
    return path
