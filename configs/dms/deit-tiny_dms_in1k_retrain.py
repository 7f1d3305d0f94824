# Retrain the structure found by deit-tiny_dms_in1k.py with mmpretrain's DeiT-tiny recipe.
# ---- fill these -------------------------------------------------------------------------
structure = 'work_dirs/deit-tiny_dms_in1k/export/structure.json'
# -------------------------------------------------------------------------------------------
_base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'

model = dict(_delete_=True, type='mmdms.PrunedModel', architecture=_base_.model,
             structure=structure)
