# RLNAS on the MobileNet-like ImageNet space (the paper's main setting): SPOS supernet on random
# labels, 120 epochs, batch 1024 over 8 GPUs. Needs ImageNet in data/imagenet (mmpretrain layout).
#   bash tools/dist_train.sh projects/rlnas/configs/supernet_mobilenet_in1k_random-label.py 8
_base_ = [
    './_base_/spaces/mobilenet_imagenet.py',
    'mmpretrain::_base_/datasets/imagenet_bs64.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='rlnas.SPOSClassifier',
    backbone={{_base_.supernet}},
    num_classes=1000,
    channels_last=True,
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
train_dataloader = dict(
    batch_size=128,
    dataset=dict(
        _delete_=True, type='rlnas.RandomLabelDataset', seed=0,
        dataset={{_base_.train_dataloader.dataset}}))
max_epochs = 120
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=4e-5, nesterov=True),
    paramwise_cfg=dict(norm_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs,
         T_max=max_epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = val_dataloader = val_evaluator = None
test_cfg = test_dataloader = test_evaluator = None
custom_hooks = [dict(type='rlnas.SaveInitWeightsHook')]
auto_scale_lr = dict(base_batch_size=1024)
