# CIFAR-10 from data/cifar10 JPEGs, decoded once into a uint8 cache (CPU speed).
# Training uses a class-balanced subset; the held-out split that scores candidates is carved
# from the *training* images with the same seed, disjoint from the training subset.
data_root = 'data/cifar10'
cache_dir = 'work_dirs/pgnas/cache'
train_per_class = 1000
heldout_per_class = 50
# An optional *extra* held-out block per class, taken after the train slice, so the training
# subset is unchanged; the searches in the README use 200 (50 + 200 = 250 per class, 2,500
# images) through --cfg-options train_dataloader.dataset.heldout_extra_per_class=200.
heldout_extra_per_class = 0
split_seed = 0

data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)  # the cache is already RGB

_split = dict(
    type='pgnas.CachedCIFAR10',
    data_root=data_root,
    cache_dir=cache_dir,
    split='train',
    train_per_class=train_per_class,
    heldout_per_class=heldout_per_class,
    heldout_extra_per_class=heldout_extra_per_class,
    split_seed=split_seed)

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(_split, subset='train', augment=True),
    sampler=dict(type='DefaultSampler', shuffle=True))
heldout_dataloader = dict(
    batch_size=500,
    num_workers=0,
    dataset=dict(_split, subset='heldout', augment=False),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_dataloader = heldout_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=500,
    num_workers=0,
    dataset=dict(
        type='pgnas.CachedCIFAR10',
        data_root=data_root,
        cache_dir=cache_dir,
        split='test',
        subset='all',
        augment=False),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = val_evaluator
