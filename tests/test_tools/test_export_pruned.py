"""tools/export_pruned.py: exact exports, --target-flops / --divisor, and bad inputs that
leave nothing behind."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmdms_testing import REPO, tiny_search_cfg
from mmdms.analysis import count_complexity
from mmdms.export import ExportError, StructureError, build_pruned_model, export_pruned
from mmdms.export.exporter import _write_all, parse_budget
from mmdms.registry import MODELS
from mmdms.utils import register_all_modules, setup_torch_load

register_all_modules(init_default_scope=False)


def _searched_checkpoint(tmp_path, base_channels=8, seed=0):
    """A config file and a checkpoint with a non-trivial DMS state (random importance and
    ratios), as a search would leave them -- without spending minutes on a search."""
    cfg = tiny_search_cfg(tmp_path / 'work')
    backbone = cfg.model.architecture.backbone
    backbone.stem_channels = backbone.base_channels = base_channels
    cfg.model.architecture.head.in_channels = base_channels * 8
    config = str(tmp_path / f'search_{base_channels}.py')
    cfg.dump(config)
    algorithm = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for unit in algorithm.mutator.units:
            unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
            unit.ratio.fill_(float(torch.rand((), generator=g)) * 0.6)
        algorithm.mutator.clamp_ratios()
        for m in algorithm.modules():  # non-trivial BN statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    checkpoint = str(tmp_path / f'search_{base_channels}.pth')
    torch.save(dict(state_dict=algorithm.state_dict(), meta=dict(iter=4)), checkpoint)
    return config, checkpoint, algorithm


def _load_exported(out_dir):
    cfg = Config.fromfile(osp.join(out_dir, 'pruned_config.py'))
    model = MODELS.build(cfg.model)
    setup_torch_load()
    model.load_state_dict(torch.load(osp.join(out_dir, 'pruned.pth'))['state_dict'])
    return model.eval()


def test_export_matches_hard_masked_search_model(tmp_path):
    config, checkpoint, algorithm = _searched_checkpoint(tmp_path)
    out = str(tmp_path / 'export')
    summary = export_pruned(config, checkpoint, out)
    assert sorted(os.listdir(out)) == ['pruned.pth', 'pruned_config.py', 'structure.json',
                                       'structure.png', 'summary.json']
    pruned = _load_exported(out)
    algorithm.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = algorithm(x, mode='tensor')
        got = pruned(x, mode='tensor')
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    counted = count_complexity(pruned, torch.randn(1, 3, 32, 32),
                               lambda m, x: m(x, mode='tensor'))['flops']
    assert counted == summary['exported']['flops']
    assert summary['exported_flops_ratio'] == pytest.approx(summary['searched_flops_ratio'])


@pytest.mark.parametrize('target', [0.7, 0.3])
def test_target_flops_is_reached_within_one_percent(tmp_path, target):
    config, checkpoint, algorithm = _searched_checkpoint(tmp_path, base_channels=16)
    summary = export_pruned(config, checkpoint, str(tmp_path / 'export'), target_flops=target)
    assert summary['within_tolerance']
    assert summary['exported_flops_ratio'] == pytest.approx(target, rel=0.01)
    assert abs(summary['searched_flops_ratio'] - target) > 0.02  # it really rescaled
    # importance still decides which channels stay: every kept set is a top-k by importance
    structure = json.load(open(tmp_path / 'export' / 'structure.json'))
    assert structure['units'] and all(u['kept'] >= 1 for u in structure['units'].values())


def test_absolute_target_and_divisor(tmp_path):
    config, checkpoint, algorithm = _searched_checkpoint(tmp_path, base_channels=16)
    original = algorithm.mutator.original_resources['flops']
    target = f'{original * 0.6 / 1e6:.4f}M'
    summary = export_pruned(config, checkpoint, str(tmp_path / 'export'), target_flops=target,
                            divisor=8, tolerance=0.05)
    assert summary['exported_flops_ratio'] == pytest.approx(0.6, rel=0.05)
    widths = [u for u in summary['units'] if u['kind'] == 'channel' and u['size'] > 8]
    assert widths and all(u['kept'] % 8 == 0 for u in widths), widths


def test_divisor_alone_rounds_searched_widths(tmp_path):
    config, checkpoint, _ = _searched_checkpoint(tmp_path, base_channels=16)
    plain = export_pruned(config, checkpoint, str(tmp_path / 'plain'))
    rounded = export_pruned(config, checkpoint, str(tmp_path / 'rounded'), divisor=8)
    before = {u['unit']: u for u in plain['units'] if u['kind'] == 'channel'}
    for unit in rounded['units']:
        if unit['kind'] != 'channel' or unit['size'] <= 8:
            continue
        assert unit['kept'] % 8 == 0
        assert abs(unit['kept'] - before[unit['unit']]['kept']) <= 4  # nearest multiple
    pruned = _load_exported(str(tmp_path / 'rounded'))
    assert pruned(torch.randn(1, 3, 32, 32), mode='tensor').shape == (1, 10)


def test_cli_prints_and_writes(tmp_path):
    config, checkpoint, _ = _searched_checkpoint(tmp_path, base_channels=16)
    out = tmp_path / 'cli'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'export_pruned.py'), config, checkpoint,
         '--out-dir', str(out), '--target-flops', '40%'],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert 'target 0.400' in proc.stdout
    summary = json.load(open(out / 'summary.json'))
    assert summary['exported_flops_ratio'] == pytest.approx(0.4, rel=0.01)


# ----------------------------------------------------------------------------- bad inputs
def test_checkpoint_without_dms_state_is_refused(tmp_path):
    config, _, algorithm = _searched_checkpoint(tmp_path)
    plain = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=algorithm.architecture.state_dict()), plain)
    out = tmp_path / 'out'
    with pytest.raises(ExportError, match='no DMS state'):
        export_pruned(config, plain, str(out))
    assert os.listdir(out) == []


def test_checkpoint_of_another_config_is_refused(tmp_path):
    config, _, _ = _searched_checkpoint(tmp_path, base_channels=8)
    _, other_checkpoint, _ = _searched_checkpoint(tmp_path, base_channels=16)
    out = tmp_path / 'out'
    with pytest.raises(ExportError, match='does not match the config'):
        export_pruned(config, other_checkpoint, str(out))
    assert os.listdir(out) == []


def test_missing_checkpoint_and_unwritable_out_dir(tmp_path):
    config, checkpoint, _ = _searched_checkpoint(tmp_path)
    with pytest.raises(ExportError, match='does not exist'):
        export_pruned(config, str(tmp_path / 'nope.pth'), str(tmp_path / 'out'))
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    with pytest.raises(ExportError, match='cannot write to --out-dir'):
        export_pruned(config, checkpoint, str(blocker / 'out'))


@pytest.mark.parametrize('target,match', [(1.5e12, 'more than the supernet'),
                                          ('half', 'cannot read the budget'),
                                          (-0.5, 'must be positive'),
                                          (1e-6, 'smallest model')])
def test_bad_targets_are_refused_before_writing(tmp_path, target, match):
    config, checkpoint, _ = _searched_checkpoint(tmp_path)
    out = tmp_path / 'out'
    with pytest.raises(ExportError, match=match):
        export_pruned(config, checkpoint, str(out), target_flops=target)
    assert os.listdir(out) == []


def test_failed_writer_leaves_no_partial_export(tmp_path):
    (tmp_path / 'keep.txt').write_text('old')

    def broken(path):
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        _write_all(str(tmp_path), {'a.json': lambda p: open(p, 'w').write('{}'),
                                   'b.png': broken})
    assert sorted(os.listdir(tmp_path)) == ['keep.txt']


def test_parse_budget():
    assert parse_budget(0.5) == 0.5
    assert parse_budget('50%') == pytest.approx(0.5)
    assert parse_budget('4.1G') == pytest.approx(4.1e9)
    assert parse_budget('300m') == pytest.approx(3e8)


def test_structure_of_another_config_or_corrupted_file_is_refused(tmp_path):
    config, checkpoint, _ = _searched_checkpoint(tmp_path, base_channels=16)
    export_pruned(config, checkpoint, str(tmp_path / 'export'))
    structure = str(tmp_path / 'export' / 'structure.json')
    (tmp_path / 'o').mkdir()
    other = Config.fromfile(_searched_checkpoint(tmp_path / 'o', base_channels=8)[0])
    with pytest.raises(StructureError, match='made for another config'):
        build_pruned_model(other.model.architecture, structure)
    broken = tmp_path / 'broken.json'
    broken.write_text(open(structure).read()[:50])
    own = Config.fromfile(config)
    with pytest.raises(StructureError, match='corrupted structure file'):
        build_pruned_model(own.model.architecture, str(broken))
    with pytest.raises(FileNotFoundError, match='structure file'):
        build_pruned_model(own.model.architecture, str(tmp_path / 'missing.json'))


def test_exported_config_retrains_from_the_searched_weights(tmp_path):
    """tools/train.py on pruned_config.py with load_from=pruned.pth starts from the exported
    weights (lr 0 keeps them: the conv weights after two iterations equal the export's)."""
    config, checkpoint, _ = _searched_checkpoint(tmp_path, base_channels=8)
    out = tmp_path / 'export'
    export_pruned(config, checkpoint, str(out))
    work = tmp_path / 'retrain'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(out / 'pruned_config.py'),
         '--work-dir', str(work), '--no-validate', '--cfg-options',
         f'load_from={out / "pruned.pth"}', 'train_cfg.max_iters=2',
         'optim_wrapper.optimizer.lr=0.0', 'param_scheduler=[]',
         'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2'],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    setup_torch_load()
    exported = torch.load(out / 'pruned.pth')['state_dict']
    trained = torch.load(work / 'iter_2.pth')['state_dict']
    convs = [k for k in exported if k.endswith('conv1.weight') or k.endswith('fc.weight')]
    assert convs and all(torch.equal(trained[k], exported[k]) for k in convs)
