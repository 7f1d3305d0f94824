# RLNAS step 1: train the NAS-Bench-Macro supernet (SPOS, one uniform path per iteration) on
# random labels; everything else as the true-label control. W0 goes to work_dir/init_weights.pth.
#   PYTHONPATH=. python tools/train.py projects/rlnas/configs/supernet_nbm_cifar10_random-label.py
_base_ = ['./supernet_nbm_cifar10_true-label.py']

# One label per image, drawn once from seed 0, uniform over the 10 real classes.
train_dataloader = dict(
    dataset=dict(
        _delete_=True, type='rlnas.RandomLabelDataset', seed=0,
        dataset={{_base_.train_dataset}}))
