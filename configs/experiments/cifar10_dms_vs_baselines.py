# Issue #8, table 1: DMS_np vs uniform width scaling vs L1-magnitude pruning at equal FLOPs on
# CIFAR-10, every arm with the same optimizer, augmentation, LR curve and total iterations.
# Driver: python tools/experiments/cifar10_dms_vs_baselines.py (reads this file).
# ---- experiment ---------------------------------------------------------------------------
budgets = [0.5, 0.25]       # FLOPs of each arm's final model as a fraction of the supernet's
seeds = [0, 1, 2]
# dms_np: search from random init, export at the budget, retrain from scratch (the paper's
# DMS_np); dms_np_inherit: the same search, but the exported weights keep training.
arms = ['uniform', 'dms_np', 'l1_oneshot', 'l1_iterative', 'dms_np_inherit']
total_iters = 1500          # iterations (batches) per arm, search/pretraining included
search_fraction = 0.2       # DMS search = 1/5 of the budget (counted against DMS); see the
                            # investigation in docs/results.md for why not the paper's 1/10
l1_pretrain_fraction = 0.5  # L1 arms train the supernet for this part, then prune
l1_iterative_steps = 3      # prune steps of the iterative L1 arm (FLOPs ratio budget**(k/K))
batch_size = 64
train_per_class = None      # None: all 5,000 training images per class
test_per_class = None       # None: the full 10,000-image test set
checkpoint_interval = 100
log_interval = 50
# ---- DMS search ---------------------------------------------------------------------------
# v1 (600 iterations, 16 base channels) searched 60 iterations with structure_lr 2e-2 and
# decay_fraction 0.8: the target reached the budget 12 iterations before the end, so the
# ratios only followed the resource loss (Adam moves every ratio ~lr per step) and the found
# widths were uniform up to noise. Here the target reaches the budget half-way, leaving 150
# iterations at the budget for the task loss to reallocate width (docs/results.md).
dms = dict(
    structure_lr=1e-2,      # Adam (beta1 0); the paper's 5e-3 is for much longer searches
    loss_weight=1.0,
    decay_fraction=0.5,     # fraction of the search over which the FLOPs target decays
    importance_metric='taylor',
    importance_decay=0.99,  # EMA of the Taylor importance (horizon ~100 iterations)
    prune_depth=True)
# ---- model and recipe (shared by every arm) -----------------------------------------------
# 8 base channels (9.0 MFLOPs): 2.4x faster per iteration than 16, so 1500 iterations (1.9
# epochs) cost what 600 did; v1's 0.77 epochs left seed noise of ~4 points (docs/results.md)
_base_ = ['../_base_/datasets/cifar10_jpg.py']
input_shape = (1, 3, 32, 32)
architecture = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, num_stages=4,
        out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
eta_min = 0.0               # cosine over each arm's total_iters (see mmdms.baselines.schedule)
