"""Launched by torchrun from test_distributed.py: a real 2-process CPU (gloo) DMS search through
the MMEngine Runner; each rank then dumps its DMS state for comparison."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmdms_testing import tiny_search_cfg  # noqa: E402


def main():
    from mmengine.runner import Runner

    from mmdms.utils import init_cpu_distributed, register_all_modules
    register_all_modules(init_default_scope=False)
    work_dir, iters = sys.argv[1], int(sys.argv[2])
    cfg = tiny_search_cfg(work_dir, max_iters=iters)
    cfg.launcher = 'pytorch'
    init_cpu_distributed(cfg.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    algorithm = runner.model.module
    state = {k: v.detach().cpu() for k, v in algorithm.mutator.state_dict().items()}
    state['grads_seen'] = torch.tensor([float(u.tracker.num_updates) for u in
                                        algorithm.mutator.units])
    torch.save(state, os.path.join(work_dir, f'rank{runner.rank}.pt'))


if __name__ == '__main__':
    main()
