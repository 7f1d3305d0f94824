"""Random-label wrapper: the labels RLNAS trains the supernet on."""
import hashlib
from typing import Optional, Union

import numpy as np
import torch

from ..registry import DATASETS


def random_labels(num_samples: int, num_classes: int, seed: int) -> np.ndarray:
    """One label per sample, uniform over ``num_classes``, a pure function of the arguments.

    A private CPU generator (not the global RNG that MMEngine seeds per rank and per worker)
    makes the labels identical across epochs, ranks, dataloader workers, processes and resumes.
    """
    if num_classes < 2:
        raise ValueError(f'num_classes must be >= 2, got {num_classes}')
    generator = torch.Generator(device='cpu').manual_seed(int(seed))
    return torch.randint(num_classes, (num_samples, ), generator=generator).numpy()


@DATASETS.register_module()
class RandomLabelDataset:
    """Wrap a dataset and replace every sample's ``gt_label`` with a fixed random one.

    The true label stays available as ``true_label`` in the data info (for analysis only).

    Args:
        dataset: the dataset or its config (an MMEngine ``BaseDataset`` with ``pipeline``).
        num_classes: number of random classes; default the wrapped dataset's real number of
            classes (``metainfo['classes']``), as RLNAS prescribes.
        seed: seed of the label draw (independent of the run's seed).
    """

    def __init__(self, dataset: Union[dict, object], num_classes: Optional[int] = None,
                 seed: int = 0, lazy_init: bool = False):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        if not hasattr(self.dataset, 'get_data_info') or not hasattr(self.dataset, 'pipeline'):
            raise TypeError('RandomLabelDataset wraps MMEngine BaseDatasets (get_data_info + '
                            f'pipeline); got {type(self.dataset).__name__}')
        self._num_classes = num_classes
        self.seed = seed
        self.labels = None
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    @property
    def num_classes(self) -> int:
        if self._num_classes is not None:
            return self._num_classes
        classes = self.dataset.metainfo.get('classes')
        if not classes:
            raise ValueError('the wrapped dataset has no metainfo["classes"]; pass num_classes')
        return len(classes)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self.labels = random_labels(len(self.dataset), self.num_classes, self.seed)
        self._fully_initialized = True

    @property
    def labels_digest(self) -> str:
        """Short hash of the label vector, to check two runs trained on the same labels."""
        self.full_init()
        return hashlib.sha1(self.labels.tobytes()).hexdigest()[:12]

    def __len__(self) -> int:
        return len(self.dataset)

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        info = self.dataset.get_data_info(idx)
        info['true_label'] = info.get('gt_label')
        info['gt_label'] = int(self.labels[idx])
        return info

    def __getitem__(self, idx: int):
        return self.dataset.pipeline(self.get_data_info(idx))
