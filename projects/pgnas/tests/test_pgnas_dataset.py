import numpy as np
import pytest
import torch
from PIL import Image

from projects.pgnas.pgnas.datasets import CachedCIFAR10


@pytest.fixture
def fake_cifar(tmp_path):
    """3 classes x 8 train images + 2 test images, in the prepared folder layout."""
    rng = np.random.default_rng(0)
    classes = ['cat', 'dog', 'ship']
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'classes.txt').write_text('\n'.join(classes) + '\n')
    for split, n in (('train', 8), ('test', 2)):
        for c in classes:
            folder = tmp_path / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f'{i}.png')  # lossless: exact pixels
    return tmp_path


def test_train_and_heldout_are_disjoint_and_balanced(fake_cifar, tmp_path):
    kw = dict(data_root=str(fake_cifar), cache_dir=str(tmp_path / 'cache'), split='train',
              train_per_class=5, heldout_per_class=2, split_seed=3)
    train = CachedCIFAR10(subset='train', **kw)
    heldout = CachedCIFAR10(subset='heldout', **kw)
    assert len(train) == 15 and len(heldout) == 6
    assert train.labels.bincount().tolist() == [5, 5, 5]
    assert heldout.labels.bincount().tolist() == [2, 2, 2]
    train_imgs = {bytes(im.numpy().tobytes()) for im in train.images}
    assert not any(bytes(im.numpy().tobytes()) in train_imgs for im in heldout.images)
    assert (tmp_path / 'cache' / 'cifar10_train_uint8.pt').is_file()
    # same seed, same split (now from the cache)
    again = CachedCIFAR10(subset='heldout', **kw)
    assert torch.equal(again.images, heldout.images)
    sample = heldout[0]
    assert sample['inputs'].dtype == torch.uint8 and sample['inputs'].shape == (3, 32, 32)
    assert int(sample['data_samples'].gt_label) == int(heldout.labels[0])
    assert heldout.metainfo['classes'] == ('cat', 'dog', 'ship')


def test_augment_keeps_shape_and_content(fake_cifar, tmp_path):
    ds = CachedCIFAR10(data_root=str(fake_cifar), cache_dir=str(tmp_path / 'c'), split='test',
                       augment=True)
    assert len(ds) == 6
    torch.manual_seed(0)
    img = ds[0]['inputs']
    assert img.shape == (3, 32, 32)
    # a crop of the zero-padded image: every non-zero pixel value comes from the original
    assert set(img.unique().tolist()) <= set(ds.images[0].unique().tolist()) | {0}


def test_too_large_subset_is_a_clear_error(fake_cifar, tmp_path):
    with pytest.raises(ValueError, match='fewer than'):
        CachedCIFAR10(data_root=str(fake_cifar), cache_dir=str(tmp_path / 'c'),
                      subset='train', train_per_class=7, heldout_per_class=2)


def test_extra_heldout_block_leaves_train_unchanged(fake_cifar, tmp_path):
    """heldout_extra_per_class takes a block *after* the train slice: the training subset
    (and a supernet trained on it) is unchanged, and all three parts are disjoint."""
    from projects.pgnas.pgnas.datasets.cached_cifar import balanced_split_indices
    kw = dict(data_root=str(fake_cifar), cache_dir=str(tmp_path / 'cache'), split='train',
              train_per_class=4, heldout_per_class=1, split_seed=3)
    train = CachedCIFAR10(subset='train', **kw)
    small = CachedCIFAR10(subset='heldout', **kw)
    big = CachedCIFAR10(subset='heldout', heldout_extra_per_class=2, **kw)
    train_big = CachedCIFAR10(subset='train', heldout_extra_per_class=2, **kw)
    assert len(train) == len(train_big) == 12
    assert torch.equal(train.images, train_big.images)
    assert len(small) == 3 and len(big) == 9
    assert big.labels.bincount().tolist() == [3, 3, 3]

    def as_set(ds):
        return {bytes(im.numpy().tobytes()) for im in ds.images}

    assert as_set(small) <= as_set(big)  # the first held-out block is kept
    assert not as_set(big) & as_set(train)

    labels = torch.tensor([0] * 8 + [1] * 8)
    tr0, ho0 = balanced_split_indices(labels, 2, 5, 1, 4)
    tr1, ho1 = balanced_split_indices(labels, 2, 5, 1, 4, heldout_extra_per_class=3)
    assert torch.equal(tr0, tr1) and tr1.numel() == 8
    assert ho0.numel() == 2 and ho1.numel() == 8
    assert set(ho0.tolist()) <= set(ho1.tolist())
    assert not set(ho1.tolist()) & set(tr1.tolist())
    assert sorted(ho1.tolist() + tr1.tolist()) == list(range(16))  # 1 + 4 + 3 = all 8
    with pytest.raises(ValueError, match='extra held-out'):
        balanced_split_indices(labels, 2, 5, 1, 4, heldout_extra_per_class=4)
    with pytest.raises(ValueError, match='needs train_per_class'):
        balanced_split_indices(labels, 2, 5, 1, None, heldout_extra_per_class=1)
