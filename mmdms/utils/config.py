"""Config loading that also understands OpenMMLab package paths like ``mmyolo::yolov8/x.py``."""
import os.path as osp

from mmengine.config import Config


def resolve_config_path(path: str) -> str:
    """Turn ``pkg::relative/path.py`` into the file shipped in that package's ``.mim/configs``.

    ``Config.fromfile`` only understands such paths inside ``_base_``; users (and our tests)
    want to pass them directly.
    """
    if '::' not in path:
        return path
    from mmengine.config.utils import _get_package_and_cfg_path
    from mmengine.utils import get_installed_path, is_installed
    package, relative = _get_package_and_cfg_path(path)
    if not is_installed(package):
        raise ModuleNotFoundError(f'{path!r} refers to package {package!r}, which is not '
                                  'installed in this environment')
    resolved = osp.join(get_installed_path(package), '.mim', 'configs', relative)
    if not osp.isfile(resolved):
        raise FileNotFoundError(f'{path!r}: {package} has no config {relative!r} '
                                f'(looked for {resolved})')
    return resolved


def load_config(path: str) -> Config:
    """``Config.fromfile`` for local files and ``pkg::`` package config paths alike."""
    return Config.fromfile(resolve_config_path(path))
