import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from projects.rlnas.rlnas.datasets import CachedImageFolder, RandomLabelDataset, random_labels

from _tiny import REPO_ROOT, TinyImages, pack  # noqa: F401 (registers TinyImages)

CHILD = ('import json, torch; torch.manual_seed(1234); '  # other global RNG state
         'from projects.rlnas.rlnas.datasets import random_labels; '
         'print(json.dumps(random_labels(500, 10, 7).tolist()))')


def test_labels_are_a_pure_function_of_seed():
    a, b = random_labels(2000, 10, 3), random_labels(2000, 10, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_labels(2000, 10, 4))
    assert a.min() == 0 and a.max() == 9
    counts = np.bincount(a, minlength=10)
    # uniform: chi-square with 9 dof stays below 27.9 with probability 0.999
    chi2 = ((counts - 200.0)**2 / 200.0).sum()
    assert chi2 < 27.9, counts
    with pytest.raises(ValueError):
        random_labels(10, 1, 0)


def _labels_in_child(seed, rank):
    torch.manual_seed(1000 + rank)  # every rank/worker has its own global RNG state
    np.random.seed(rank)
    return random_labels(500, 10, seed).tolist()


def test_labels_identical_across_forked_processes():
    """DDP ranks and dataloader workers: other processes, other global RNG states."""
    with mp.get_context('fork').Pool(2) as pool:
        results = pool.starmap(_labels_in_child, [(7, 0), (7, 1)])
    assert results[0] == results[1] == random_labels(500, 10, 7).tolist()


@pytest.mark.slow
def test_labels_identical_in_a_fresh_interpreter():
    """A resumed run starts a new interpreter (slow only because it imports the stack)."""
    import json
    out = subprocess.run([sys.executable, '-c', CHILD], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == random_labels(500, 10, 7).tolist()


def test_wrapper_fixed_across_epochs_and_resume():
    inner = dict(type='rlnas.TinyImages', num=40, pipeline=[pack])
    ds = RandomLabelDataset(inner, seed=5)
    assert ds.num_classes == 4  # the real number of classes of the wrapped dataset
    assert len(ds) == 40
    np.testing.assert_array_equal(ds.labels, random_labels(40, 4, 5))
    true = np.arange(40) % 4
    assert (ds.labels == true).mean() < 0.6  # chance agreement is 1/4
    # two epochs in different orders see the same label for every sample
    seen = []
    for epoch in range(2):
        g = torch.Generator().manual_seed(epoch)
        loader = DataLoader(range(len(ds)), batch_size=8, shuffle=True, generator=g)
        labels = {}
        for idx_batch in loader:
            for idx in idx_batch.tolist():
                labels[idx] = ds[idx]['label']
        seen.append(labels)
    assert seen[0] == seen[1] == {i: int(l) for i, l in enumerate(ds.labels)}
    # a restarted run (new object, other global seed) gets the same labels
    torch.manual_seed(99)
    np.random.seed(99)
    again = RandomLabelDataset(inner, seed=5)
    assert again.labels_digest == ds.labels_digest
    info = ds.get_data_info(3)
    assert info['gt_label'] == ds.labels[3] and info['true_label'] == 3 % 4


def test_wrapper_rejects_non_mmengine_dataset():
    with pytest.raises(TypeError):
        RandomLabelDataset(list(range(10)))


def test_cached_image_folder(tmp_path):
    import cv2
    root = tmp_path / 'imgs'
    rng = np.random.default_rng(0)
    for cls in ('b_cls', 'a_cls'):
        os.makedirs(root / cls)
        for i in range(5):
            cv2.imwrite(str(root / cls / f'{i:02d}.png'),
                        rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    cache = str(tmp_path / 'cache.npz')
    train = CachedImageFolder(str(root), num_per_class=3, cache_file=cache)
    held = CachedImageFolder(str(root), num_per_class=2, offset_per_class=3, cache_file=cache)
    assert os.path.isfile(cache)
    assert train.metainfo['classes'] == ('a_cls', 'b_cls')  # sorted, like CustomDataset
    assert len(train) == 6 and len(held) == 4
    assert np.bincount(train.get_gt_labels()).tolist() == [3, 3]
    paths = {d['img_path'] for d in train.data_list} | {d['img_path'] for d in held.data_list}
    assert len(paths) == 10  # disjoint slices
    info = train.get_data_info(0)
    expected = cv2.imread(str(root / info['img_path']))
    np.testing.assert_array_equal(info['img'], expected)
    with pytest.raises(ValueError):
        CachedImageFolder(str(root), num_per_class=3, offset_per_class=3, cache_file=cache)
