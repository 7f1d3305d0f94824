"""Real multi-process and resume behaviour of a DMS search through the MMEngine Runner."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmdms_testing import REPO, tiny_search_cfg
from mmdms.registry import HOOKS
from mmdms.utils import register_all_modules, setup_torch_load

register_all_modules(init_default_scope=False)


def test_two_process_ddp_search_keeps_ranks_identical(tmp_path, cifar_available):
    iters = 3
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_port=29517', osp.join(osp.dirname(__file__), 'dist_search.py'),
           str(tmp_path), str(iters)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / 'rank0.pt')
    rank1 = torch.load(tmp_path / 'rank1.pt')
    assert set(rank0) == set(rank1)
    ratios = [k for k in rank0 if k.endswith('.ratio')]
    importances = [k for k in rank0 if k.endswith('tracker.importance')]
    assert ratios and importances
    for key in ratios + importances:
        assert torch.equal(rank0[key], rank1[key]), key
    assert (rank0['grads_seen'] == iters).all()
    assert any(float(rank0[k]) > 0 for k in ratios)  # the search really moved
    assert any(rank0[k].abs().sum() > 0 for k in importances)


class _Interrupt(Exception):
    pass


@HOOKS.register_module()
class InterruptAfterIter(Hook):
    """Stop the run right after the checkpoint of iteration ``at`` was written."""
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            raise _Interrupt


def _mutator_state(work_dir, iters):
    setup_torch_load()
    state = torch.load(osp.join(work_dir, f'iter_{iters}.pth'), map_location='cpu')
    return {k: v for k, v in state['state_dict'].items() if k.startswith('mutator.')}, state


def test_resume_continues_exactly(tmp_path, cifar_available):
    iters = 4
    straight = tiny_search_cfg(tmp_path / 'straight', max_iters=iters)
    Runner.from_cfg(straight).train()

    interrupted = tiny_search_cfg(tmp_path / 'resumed', max_iters=iters)
    interrupted.custom_hooks.append(dict(type='InterruptAfterIter', at=2))
    with pytest.raises(_Interrupt):
        Runner.from_cfg(interrupted).train()
    assert osp.isfile(tmp_path / 'resumed' / 'iter_2.pth')
    assert not osp.exists(tmp_path / 'resumed' / 'iter_4.pth')

    resumed = tiny_search_cfg(tmp_path / 'resumed', max_iters=iters)
    resumed.resume = True
    resumed.load_from = str(tmp_path / 'resumed' / 'iter_2.pth')
    Runner.from_cfg(resumed).train()

    a, ckpt_a = _mutator_state(tmp_path / 'straight', iters)
    b, ckpt_b = _mutator_state(tmp_path / 'resumed', iters)
    assert set(a) == set(b)
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    assert any(float(v) > 0 for k, v in a.items() if k.endswith('.ratio'))
    # the schedule state (target) and the weights continue too
    assert torch.allclose(ckpt_a['state_dict']['current_target_ratio'],
                          ckpt_b['state_dict']['current_target_ratio'])
    for key, value in ckpt_a['state_dict'].items():
        assert torch.allclose(value.float(), ckpt_b['state_dict'][key].float(), atol=1e-5), key
