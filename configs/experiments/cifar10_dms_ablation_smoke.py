# CI-sized version of cifar10_dms_ablation.py: the smoke experiment's tiny subset and
# schedule, two variants. Checks the pipeline, not accuracy.
_base_ = ['./cifar10_dms_vs_baselines_smoke.py']
budgets = [0.5]
seeds = [0]
variants = [
    dict(name='uniform_short_schedule', arms=['uniform'], options=dict(total_iters=16),
         seeds=[0, 1],
         question='uniform with the iterations DMS_np has left for retraining'),
    dict(name='widths_only', arms=['dms_np', 'dms_full_retrain'],
         options={'dms.prune_depth': False},
         question='search widths only; the structure also retrained for all iterations'),
]
