"""Turn hard masks into physically smaller models of the original classes."""
from .adapters import apply_adapter, update_layer_attributes
from .structure import (StructureError, apply_structure, load_structure, save_structure,
                        validate_structure)

__all__ = [
    'apply_structure', 'load_structure', 'save_structure', 'validate_structure',
    'StructureError', 'apply_adapter', 'update_layer_attributes'
]
