# CIFAR-10 from the JPEG folders (tools/dataset_converters/prepare_data.py), decoded once into
# work_dirs/rlnas/*.npz. Splits (class-balanced, disjoint): images 0-499 of every class train the
# supernet (5k), images 4500-4599 (1k) are the held-out split for one-shot accuracy.
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True)  # cv2 decodes BGR

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataset = dict(
    type='rlnas.CachedImageFolder',
    data_root='data/cifar10/train',
    cache_file='work_dirs/rlnas/cifar10_train.npz',
    num_per_class=500,
    pipeline=train_pipeline)
heldout_dataset = dict(
    type='rlnas.CachedImageFolder',
    data_root='data/cifar10/train',
    cache_file='work_dirs/rlnas/cifar10_train.npz',
    num_per_class=100,
    offset_per_class=4500,
    pipeline=test_pipeline,
    test_mode=True)

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=train_dataset)
heldout_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=heldout_dataset)
