# Posterior-guided search on the PGNAS supernet:
#   PYTHONPATH=. python tools/train.py THIS_CONFIG --cfg-options load_from=SUPERNET.pth
# draws C candidates from the learned p, scores each on the held-out split (carved from the
# training images) with its own weights, and exports the best of the first 50 and of all 200.
_base_ = ['./pgnas_supnet-r8-w8_cifar10.py']
# The held-out split: 50 images per class by default. Enlarge it without touching the
# supernet's training subset with
#   --cfg-options train_dataloader.dataset.heldout_extra_per_class=200   (2,500 images)
train_dataloader = {{_base_.heldout_dataloader}}
train_cfg = dict(
    _delete_=True,
    type='pgnas.PGNASSearchLoop',
    num_candidates=200,
    sampler='posterior',
    seed=0,
    report_at=(50, 200),
    export=True)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = None
default_hooks = dict(checkpoint=None)
