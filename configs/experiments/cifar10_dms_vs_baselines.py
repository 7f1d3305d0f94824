# Issue #8, table 1: DMS_np vs uniform width scaling vs L1-magnitude pruning at equal FLOPs on
# CIFAR-10, every arm with the same optimizer, augmentation, LR curve and total iterations.
# Driver: python tools/experiments/cifar10_dms_vs_baselines.py (reads this file).
# ---- experiment ---------------------------------------------------------------------------
budgets = [0.5, 0.25]       # FLOPs of each arm's final model as a fraction of the supernet's
seeds = [0, 1, 2]
# dms_np: search from random init, export at the budget, retrain from scratch (the paper's
# DMS_np); dms_np_inherit: the same search, but the exported weights keep training.
arms = ['uniform', 'dms_np', 'l1_oneshot', 'l1_iterative', 'dms_np_inherit']
total_iters = 600           # iterations (batches) per arm, search/pretraining included
search_fraction = 0.1       # DMS search = 1/10 of the budget (paper); the rest retrains
l1_pretrain_fraction = 0.5  # L1 arms train the supernet for this part, then prune
l1_iterative_steps = 3      # prune steps of the iterative L1 arm (FLOPs ratio budget**(k/K))
batch_size = 64
train_per_class = None      # None: all 5,000 training images per class
test_per_class = None       # None: the full 10,000-image test set
checkpoint_interval = 100
log_interval = 25
# ---- DMS search ---------------------------------------------------------------------------
dms = dict(
    structure_lr=2e-2,      # the paper's 5e-3 is for searches of thousands of iterations;
    loss_weight=1.0,        # ours has total_iters * search_fraction, see docs/results.md
    decay_fraction=0.8,
    importance_metric='taylor')
# ---- model and recipe (shared by every arm) -----------------------------------------------
_base_ = ['../_base_/datasets/cifar10_jpg.py']
input_shape = (1, 3, 32, 32)
architecture = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16, num_stages=4,
        out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
eta_min = 0.0               # cosine over each arm's total_iters (see mmdms.baselines.schedule)
