from .checkpoint import add_safe_checkpoint_hook, setup_torch_load
from .config import load_config, resolve_config_path
from .dist import init_cpu_distributed
from .fileio import atomic_write, atomic_write_text
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'load_config', 'resolve_config_path', 'setup_torch_load',
           'add_safe_checkpoint_hook', 'init_cpu_distributed',
           'atomic_write', 'atomic_write_text']
