"""Architecture encoding: one choice index per searchable layer.

Text form is a digit string ('22121100', NAS-Bench-Macro's keys) when every layer has at most 10
choices, otherwise indices joined by '-'.
"""
from typing import Sequence, Tuple, Union

Arch = Tuple[int, ...]
ArchLike = Union[str, Sequence[int]]


def parse_arch(arch: ArchLike, num_choices: Sequence[int]) -> Arch:
    """Turn a string or sequence into a validated tuple of choice indices."""
    if isinstance(arch, str):
        parts = arch.split('-') if '-' in arch else list(arch)
        try:
            arch = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f'arch {arch!r} is not a digit string or "-"-joined ints') from None
    arch = tuple(int(c) for c in arch)
    if len(arch) != len(num_choices):
        raise ValueError(f'arch {arch} has {len(arch)} layers, the space has {len(num_choices)}')
    for layer, (choice, n) in enumerate(zip(arch, num_choices)):
        if not 0 <= choice < n:
            raise ValueError(f'layer {layer}: choice {choice} out of range [0, {n})')
    return arch


def arch_to_str(arch: Sequence[int], num_choices: Sequence[int] = None) -> str:
    """Inverse of :func:`parse_arch`."""
    if num_choices is not None and max(num_choices) > 10:
        return '-'.join(str(c) for c in arch)
    if any(c > 9 for c in arch):
        return '-'.join(str(c) for c in arch)
    return ''.join(str(c) for c in arch)
