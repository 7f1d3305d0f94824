import json
import logging
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from projects.rlnas.rlnas.engine import SaveInitWeightsHook

from _tiny import REPO_ROOT, tiny_model


def _runner(model, work_dir, it=0):
    return SimpleNamespace(model=model, work_dir=str(work_dir), iter=it, rank=0, seed=0,
                           logger=logging.getLogger('test'))


def test_init_weights_hook_saves_w0_and_wt(tmp_path):
    torch.manual_seed(0)
    model = tiny_model()
    w0 = {k: v.clone() for k, v in model.state_dict().items()}
    hook = SaveInitWeightsHook()
    hook.before_train(_runner(model, tmp_path))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    hook.after_train(_runner(model, tmp_path, it=10))
    saved0 = torch.load(tmp_path / 'init_weights.pth', weights_only=True)['state_dict']
    saved_t = torch.load(tmp_path / 'final_weights.pth', weights_only=True)['state_dict']
    assert saved0.keys() == w0.keys()
    for k in w0:
        torch.testing.assert_close(saved0[k], w0[k])
        torch.testing.assert_close(saved_t[k], model.state_dict()[k])
    # a resumed run keeps the original W0 ...
    hook.before_train(_runner(model, tmp_path, it=5))
    again = torch.load(tmp_path / 'init_weights.pth', weights_only=True)['state_dict']
    torch.testing.assert_close(again, saved0)
    # ... and refuses to go on without it
    os.remove(tmp_path / 'init_weights.pth')
    with pytest.raises(FileNotFoundError, match='initial'):
        hook.before_train(_runner(model, tmp_path, it=5))


def _train(config, work_dir, *options):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools/train.py'), config, '--work-dir',
           str(work_dir), '--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_end_to_end_on_cifar(tmp_path):
    """Supernet on random labels -> angle and accuracy searches (resumed) -> export -> retrain,
    all through tools/train.py on a few real CIFAR-10 images."""
    if not osp.isdir(osp.join(REPO_ROOT, 'data/cifar10/train')):
        pytest.skip('CIFAR-10 not prepared (tools/dataset_converters/prepare_data.py)')
    cfg = 'projects/rlnas/configs/'
    sup = tmp_path / 'supernet'
    _train(cfg + 'supernet_nbm_cifar10_random-label.py', sup,
           'train_dataloader.dataset.dataset.num_per_class=2', 'train_dataloader.batch_size=10',
           'max_epochs=1', 'train_cfg.max_epochs=1', 'param_scheduler.end=1',
           'param_scheduler.T_max=1')
    assert (sup / 'init_weights.pth').is_file() and (sup / 'final_weights.pth').is_file()
    w0 = torch.load(sup / 'init_weights.pth', weights_only=True)['state_dict']
    wt = torch.load(sup / 'final_weights.pth', weights_only=True)['state_dict']
    moved = [k for k in w0 if k.endswith('weight') and not torch.equal(w0[k], wt[k])]
    assert any('backbone.stem' in k for k in moved)  # trained, and W0 kept apart

    search = tmp_path / 'search'
    opts = [f'train_cfg.supernet_weights={sup}/final_weights.pth',
            'train_cfg.constraints.flops=45539840', 'train_cfg.population_size=10',
            'train_cfg.top_k=4', 'train_cfg.num_mutation=5', 'train_cfg.num_crossover=5',
            'train_cfg.max_epochs=3']
    _train(cfg + 'search_nbm_cifar10_angle.py', search, *opts)
    result = json.loads((search / 'search_results.json').read_text())
    assert result['num_evaluated'] == 30 and result['score'] == 'angle'
    assert all(c['flops'] <= 45539840 for c in result['top_k'])
    assert result['top_k'][0]['score'] == max(c['score'] for c in result['top_k']) > 0
    # a longer rerun resumes: the first 3 generations are not evaluated again
    log = _train(cfg + 'search_nbm_cifar10_angle.py', search, *opts[:-1],
                 'train_cfg.max_epochs=4')
    assert 'resumed the search after generation 3' in log
    longer = json.loads((search / 'search_results.json').read_text())
    assert longer['num_evaluated'] == 40 and longer['history'][:3] == result['history']

    acc = tmp_path / 'search_acc'
    _train(cfg + 'search_nbm_cifar10_accuracy.py', acc, opts[0], 'train_cfg.population_size=3',
           'train_cfg.top_k=2', 'train_cfg.num_mutation=1', 'train_cfg.num_crossover=1',
           'train_cfg.max_epochs=2', 'train_cfg.calib_batches=1',
           'train_dataloader.batch_size=8', 'train_cfg.val_dataloader.dataset.num_per_class=2')
    acc_result = json.loads((acc / 'search_results.json').read_text())
    assert acc_result['num_evaluated'] == 5
    assert all(0 <= c['score'] <= 100 and c['score'] * 20 % 5 == 0  # 20 images: 5% steps
               for c in acc_result['top_k'])

    out = tmp_path / 'export'
    proc = subprocess.run(
        [sys.executable, 'projects/rlnas/tools/export_subnet.py',
         cfg + 'supernet_nbm_cifar10_random-label.py', '--search-result',
         str(search / 'search_results.json'), '--weights', str(sup / 'final_weights.pth'),
         '--out-dir', str(out)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    arch = longer['best']['arch']
    info = json.loads((out / f'subnet_{arch}.json').read_text())
    assert info['arch'] == arch and info['flops'] == longer['best']['flops']
    # the exported network = the supernet's path, with only that path's weights
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from projects.rlnas.rlnas.registry import MODELS
    init_default_scope('mmpretrain')
    sub_cfg = Config.fromfile(str(out / f'subnet_{arch}.py'))
    assert sub_cfg.model.backbone.fixed_arch == arch
    sub = MODELS.build(sub_cfg.model)
    sub.load_state_dict(torch.load(out / f'subnet_{arch}.pth', weights_only=True)['state_dict'])
    sup_cfg = Config.fromfile(cfg + 'supernet_nbm_cifar10_random-label.py')
    supernet = MODELS.build(sup_cfg.model)
    supernet.load_state_dict(wt)
    sub.eval(), supernet.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(sub.logits(x), supernet.logits(x, arch), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in sub.parameters()) == info['params']
    # and it retrains with tools/train.py
    retrain = tmp_path / 'retrain'
    log = _train(str(out / f'subnet_{arch}.py'), retrain,
                 'train_dataloader.dataset.num_per_class=2', 'train_dataloader.batch_size=10',
                 'val_dataloader.dataset.num_per_class=2', 'max_epochs=1',
                 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'param_scheduler.end=1',
                 'param_scheduler.T_max=1', f'load_from={out}/subnet_{arch}.pth')
    assert 'accuracy/top1' in log
