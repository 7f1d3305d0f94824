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
