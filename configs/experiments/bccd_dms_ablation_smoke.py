# CI-sized version of bccd_dms_ablation.py: the smoke experiment's 8 images at 160x160 and
# 2-iteration phases, two variants. Checks the pipeline, not accuracy.
_base_ = ['./bccd_yolov8_dms_vs_yolov8n_smoke.py']
seeds = [0]
variants = [
    dict(name='loss_weight_2', arms=['dms_np'], options={'dms.loss_weight': 2.0},
         question='resource-loss weight 2'),
    dict(name='widths_only_lambda', arms=['dms_np', 'dms_full_retrain'],
         options={'dms.prune_depth': False, 'dms.lambda_scale': 0.25}, seeds=[1],
         question='widths only, softer masks; the structure also retrained for all '
         'iterations'),
]
