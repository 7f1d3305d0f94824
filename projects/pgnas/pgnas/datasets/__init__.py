from .cached_cifar import CachedCIFAR10, balanced_split_indices, load_cached_split

__all__ = ['CachedCIFAR10', 'balanced_split_indices', 'load_cached_split']
