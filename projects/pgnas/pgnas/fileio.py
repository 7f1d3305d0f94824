"""Atomic writes (temp file beside the target, then rename), from :mod:`mmdms.utils.fileio`."""
import json

from mmdms.utils.fileio import atomic_write, atomic_write_text

__all__ = ['atomic_write', 'atomic_write_text', 'atomic_write_json']


def atomic_write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + '\n')
