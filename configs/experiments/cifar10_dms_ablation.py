# Issue #8, investigation of table 1: why does DMS_np retrained from scratch lose to uniform
# scaling on CIFAR-10? One factor at a time against the main experiment's settings, at one
# budget. Driver: python tools/experiments/cifar10_dms_ablation.py (reads this file).
_base_ = ['./cifar10_dms_vs_baselines.py']
budgets = [0.5]
seeds = [0]                 # default seeds of a variant (a variant may list its own)
# Each variant runs ``arms`` in its own work dir with ``options`` merged into the main
# experiment's settings; the main experiment's runs at the same budget and seeds are the
# reference rows (``--reference-work-dir``). Search-setting variants run dms_np only: the
# question is what DMS_np loses (inheriting the searched weights already wins). The first two variants separate the search's
# cost from the searched structure's quality, so they run every seed of the main table.
variants = [
    dict(name='uniform_short_schedule', arms=['uniform'], options=dict(total_iters=1200),
         seeds=[0, 1, 2],
         question='How much does the search cost? Uniform trained only for the 1,200 '
         'iterations that DMS_np has left for retraining.'),
    dict(name='searched_structure_full_schedule', arms=['dms_full_retrain'], options=dict(),
         seeds=[0, 1, 2],
         question='Is the searched structure worse? The DMS_np structure retrained from '
         'scratch for all 1,500 iterations (search not counted).'),
    dict(name='widths_only', arms=['dms_np'],
         options={'dms.prune_depth': False}, seeds=[1],
         question='Does removing residual blocks hurt? Search widths only (seed 1: its '
         'main-table search removed a layer1 block; seed 0\'s kept every block).'),
    dict(name='structure_lr_5e-3', arms=['dms_np'],
         options={'dms.structure_lr': 5e-3}, seeds=[0, 1, 2],
         question='Structure lr: the paper\'s 5e-3 instead of 1e-2 (the only variant beyond '
         'noise on seed 0, so all three seeds).'),
    dict(name='loss_weight_4', arms=['dms_np'],
         options={'dms.loss_weight': 4.0},
         question='Resource-loss weight 4 instead of 1 (holds FLOPs at the target harder).'),
    dict(name='importance_fisher', arms=['dms_np'],
         options={'dms.importance_metric': 'fisher'},
         question='Importance metric: Fisher (g²) instead of Taylor ((m·g)²).'),
    dict(name='lambda_scale_0.25', arms=['dms_np'],
         options={'dms.lambda_scale': 0.25},
         question='Mask temperature λ = N/4 instead of N for widths: softer masks, the '
         'ratio\'s gradient reaches ~4x more channels around the threshold.'),
    dict(name='lambda_scale_4', arms=['dms_np'],
         options={'dms.lambda_scale': 4.0},
         question='Mask temperature λ = 4N for widths: nearly hard masks, only the channels '
         'next to the threshold move the ratio.'),
    dict(name='search_10pct', arms=['dms_np'],
         options=dict(search_fraction=0.1),
         question='Search length: 150 search iterations instead of 300 (pilot P7, last: '
         'repeats a known single-seed result).'),
]
