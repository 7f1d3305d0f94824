# CI-sized version of cifar10_dms_vs_baselines.py: one seed, one budget, a few iterations on a
# tiny class-balanced subset, a narrow supernet. Checks the pipeline, not accuracy.
_base_ = ['./cifar10_dms_vs_baselines.py']
budgets = [0.5]
seeds = [0]
total_iters = 20
search_fraction = 0.2
l1_iterative_steps = 2
batch_size = 8
train_per_class = 16
test_per_class = 5
checkpoint_interval = 10
log_interval = 5
architecture = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    head=dict(in_channels=64))
