# Retrain the structure found by yolov8n_dms.py with MMYOLO's own recipe (EMA, mosaic, ...).
# After:  python tools/export_pruned.py configs/dms/yolov8n_dms.py CKPT --out-dir EXPORT
# ---- fill these -------------------------------------------------------------------------
structure = 'work_dirs/yolov8n_dms/export/structure.json'
# -------------------------------------------------------------------------------------------
_base_ = 'mmyolo::yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco.py'

deepen_factor = 0.5
widen_factor = 0.5
architecture = _base_.model
architecture.backbone.deepen_factor = deepen_factor
architecture.backbone.widen_factor = widen_factor
architecture.neck.deepen_factor = deepen_factor
architecture.neck.widen_factor = widen_factor
architecture.bbox_head.head_module.widen_factor = widen_factor

# the original YOLODetector class, physically pruned to `structure` (no tracing)
model = dict(_delete_=True, type='mmdms.PrunedModel', architecture=architecture,
             structure=structure)
# configs inherited through `mmyolo::` get `_scope_` on every typed dict; the runner passes it on
# to the collate function as a keyword, which yolov5_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='yolov5_collate'))
