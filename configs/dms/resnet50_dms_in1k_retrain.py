# Retrain the structure found by resnet50_dms_in1k.py with mmpretrain's ResNet-50 recipe.
# ---- fill these -------------------------------------------------------------------------
structure = 'work_dirs/resnet50_dms_in1k/export/structure.json'
# -------------------------------------------------------------------------------------------
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

model = dict(_delete_=True, type='mmdms.PrunedModel', architecture=_base_.model,
             structure=structure)
