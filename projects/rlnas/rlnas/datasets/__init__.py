from .cached_folder import CachedImageFolder, load_folder_cache
from .random_label import RandomLabelDataset, random_labels

__all__ = ['CachedImageFolder', 'load_folder_cache', 'RandomLabelDataset', 'random_labels']
