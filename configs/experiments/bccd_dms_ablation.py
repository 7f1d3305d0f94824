# Issue #8, investigation of table 2: why is the DMS-searched YOLOv8 worse than YOLOv8-n on
# BCCD? One search setting at a time against the main experiment's settings (seed 0).
# Driver: python tools/experiments/bccd_dms_ablation.py (reads this file).
_base_ = ['./bccd_yolov8_dms_vs_yolov8n.py']
seeds = [0]                 # default seeds of a variant (a variant may list its own)
# Each variant runs ``arms`` in its own work dir with ``options`` merged into the main
# experiment's settings; the main experiment's runs of the same seeds are the reference rows
# (``--reference-work-dir``). The main search's structure is itself worse than YOLOv8-n
# (retrained for all 20 epochs: 0.538 vs 0.555, docs/results.md): it keeps the backbone wide,
# prunes the neck's bottom-up path and the heads to 5-20% and removes the only block of
# stages 1, 3 and 4. Suspect: resource-loss weight 8 lets the FLOPs term drive the widths.
variants = [
    dict(name='loss_weight_2', arms=['dms_np'], options={'dms.loss_weight': 2.0},
         question='Resource-loss weight 2 instead of 8 (the task loss weighs 4x more; the '
         'export rescales the widths to YOLOv8-n\'s FLOPs if the search lags the target).'),
    dict(name='widths_only', arms=['dms_np'], options={'dms.prune_depth': False},
         question='Search widths only: keep every block (the main searches removed the only '
         'block of stages 1, 3 and 4).'),
    dict(name='search_8_epochs', arms=['dms_np'], options=dict(search_epochs=8),
         question='Search for 8 epochs instead of 4 (counted: 12 epochs left to retrain). Every '
         'search so far cut the P4/P5 heads and the neck\'s bottom-up path to the minimum; '
         'does more task-loss signal before the target is reached keep them?'),
]
