# DMS search of YOLOv8 on BCCD (blood-cell detection, 3 classes, 205 train images), CPU-sized:
# a YOLOv8-s supernet (deepen 0.33 / widen 0.5) at 320x320 searched to YOLOv8-n's FLOPs.
# ---- fill these -------------------------------------------------------------------------
target_ratio = 0.308      # FLOPs of YOLOv8-n / FLOPs of YOLOv8-s
structure_lr = 5e-3
resource_loss_weight = 1.0
search_epochs = 20
# -------------------------------------------------------------------------------------------
_base_ = './yolov8n_dms.py'

data_root = 'data/bccd/'
class_name = ('RBC', 'WBC', 'Platelets')
num_classes = len(class_name)
metainfo = dict(classes=class_name, palette=[(220, 20, 60), (20, 60, 220), (60, 220, 20)])
img_scale = (320, 320)
train_batch_size_per_gpu = 8

model = dict(
    target_ratio=target_ratio,
    loss_weight=resource_loss_weight,
    input_shape=(1, 3, 320, 320),
    architecture=dict(
        backbone=dict(deepen_factor=0.33, widen_factor=0.5),
        neck=dict(deepen_factor=0.33, widen_factor=0.5),
        bbox_head=dict(head_module=dict(num_classes=num_classes, widen_factor=0.5)),
        train_cfg=dict(assigner=dict(num_classes=num_classes))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114)),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip', 'flip_direction',
                    'scale_factor', 'pad_param')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=False, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'pad_param')),
]
train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=1,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file='annotations/train.json',
        data_prefix=dict(img='JPEGImages/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file='annotations/val.json',
        data_prefix=dict(img='JPEGImages/'), pipeline=test_pipeline, batch_shapes_cfg=None))
test_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file='annotations/test.json',
        data_prefix=dict(img='JPEGImages/'), pipeline=test_pipeline, batch_shapes_cfg=None))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json', classwise=True)
test_evaluator = dict(ann_file=data_root + 'annotations/test.json', classwise=True)

optim_wrapper = dict(
    architecture=dict(optimizer=dict(batch_size_per_gpu=train_batch_size_per_gpu)),
    mutator=dict(optimizer=dict(lr=structure_lr)))
param_scheduler = dict(
    _delete_=True,
    architecture=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
        dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0,
             end=search_epochs),
    ],
    mutator=[])
env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2,
                                                               save_best=None))
custom_hooks = [dict(type='mmdms.DMSSearchHook', decay_fraction=0.8, interval=5)]
train_cfg = dict(max_epochs=search_epochs, val_interval=5)
