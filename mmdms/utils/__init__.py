from .checkpoint import setup_torch_load
from .config import load_config, resolve_config_path
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'load_config', 'resolve_config_path', 'setup_torch_load']
