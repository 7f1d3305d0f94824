"""tools/analysis_tools/benchmark_latency.py on a tiny CIFAR ResNet: the JSON has every field,
its FLOPs ratio equals a direct count, and the default pruned model is hardware-friendly."""
import copy
import importlib.util
import json
import os.path as osp

import torch

from mmdms_testing import REPO
from mmdms.analysis import count_complexity
from mmdms.export import apply_structure, save_structure
from mmdms.models.mutators import DMSMutator
from mmdms.utils import load_config

spec = importlib.util.spec_from_file_location(
    'benchmark_latency', osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_latency.py'))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

SIZE = 32


def tiny_config(tmp_path):
    cfg = load_config('mmpretrain::resnet/resnet18_8xb16_cifar10.py')
    cfg.model.backbone.update(stem_channels=16, base_channels=16)
    cfg.model.head.in_channels = 128
    path = str(tmp_path / 'tiny_resnet.py')
    cfg.dump(path)
    return path


def direct_flops_ratio(config, structure):
    model = bench.build_model('mmpretrain', load_config(config))
    pruned = apply_structure(copy.deepcopy(model), structure)
    x = torch.randn(1, 3, SIZE, SIZE)
    call = (lambda m, inputs: m(inputs, mode='tensor'))
    return count_complexity(pruned, x, call)['flops'] / count_complexity(model, x, call)['flops']


def run(tmp_path, *extra):
    config = tiny_config(tmp_path)
    out_dir = tmp_path / 'out'
    argv = ['--config', config, '--input-size', str(SIZE), '--batch-sizes', '1', '2',
            '--repeats', '3', '--repeats-batched', '2', '--warmup', '1', '--threads', '1',
            '--out-dir', str(out_dir), *extra]
    bench.main(argv)
    report = json.loads((out_dir / 'latency.json').read_text())
    return config, out_dir, report


def test_default_structure_json_fields_and_flops(tmp_path):
    config, out_dir, report = run(tmp_path)
    assert (out_dir / 'latency.md').is_file() and (out_dir / 'latency.png').is_file()
    meta = report['meta']
    for key in ('date', 'cpu', 'torch', 'onnxruntime', 'threads', 'repeats', 'warmup',
                'load_before', 'load_after', 'command', 'structure'):
        assert key in meta, key
    assert meta['threads'] == 1 and meta['batch_sizes'] == [1, 2]
    (record, ) = report['results']
    assert record['model'] == 'tiny_resnet' and record['input_size'] == SIZE
    assert set(record['latency']) == {'pytorch', 'onnxruntime'}
    for backend in record['latency'].values():
        assert set(backend) == {'1', '2'}
        for batch, t in backend.items():
            assert t['rounds'] == (3 if batch == '1' else 2)
            assert len(t['original_all_ms']) == len(t['pruned_all_ms']) == t['rounds']
            assert t['original_ms'] > 0 and t['pruned_ms'] > 0
            assert abs(t['ratio'] - t['pruned_ms'] / t['original_ms']) < 1e-9
            assert t['round_ratio_min'] <= t['round_ratio_median'] <= t['round_ratio_max']
            fastest = min(t['pruned_all_ms']) / min(t['original_all_ms'])
            assert abs(t['ratio_of_min'] - fastest) < 1e-9
    # the default: one width factor to 50% of the FLOPs (1%), widths multiples of 8
    flops = record['flops']
    assert abs(flops['ratio'] - 0.5) <= 0.01 * 0.5
    assert flops['ratio'] == flops['pruned'] / flops['original']
    assert record['non_multiple_of_8'] == 0
    assert all(kept % 8 == 0 or kept == total for _, kept, total in record['widths'])
    # ... and the same structure rebuilt here gives the same FLOPs ratio by a direct count
    model = bench.build_model('mmpretrain', load_config(config))
    structure, info = bench.width_structure(model, SIZE, flops_ratio=0.5)
    assert abs(direct_flops_ratio(config, structure) - flops['ratio']) < 1e-12
    md = (out_dir / 'latency.md').read_text()
    assert '| tiny_resnet | 32 |' in md and 'onnxruntime' in md
    # --render-only rewrites the markdown from the JSON, with the notes, measuring nothing
    notes = tmp_path / 'notes.md'
    notes.write_text('## Why\n\nBecause.\n')
    bench.main(['--render-only', '--out-dir', str(out_dir), '--notes', str(notes), '--no-plot'])
    md2 = (out_dir / 'latency.md').read_text()
    assert md2.startswith(md.rstrip('\n')) and md2.rstrip().endswith('Because.')
    assert json.loads((out_dir / 'latency.json').read_text()) == report


def test_given_structure_flops_ratio_equals_direct_count(tmp_path):
    config = tiny_config(tmp_path)
    model = bench.build_model('mmpretrain', load_config(config))
    supernet = copy.deepcopy(model)
    mutator = DMSMutator()
    x = torch.randn(1, 3, SIZE, SIZE)
    mutator.prepare_from_supernet(supernet, lambda: supernet(x, mode='tensor'))
    g = torch.Generator().manual_seed(0)
    for unit in mutator.units:  # random, odd widths and random depth
        unit.keep(max(unit.min_kept, round(0.55 * unit.num_elements)),
                  torch.rand(unit.num_elements, generator=g))
    mutator.set_mode('hard')
    structure = mutator.structure()
    path = str(tmp_path / 'structure.json')
    save_structure(structure, path)
    _, _, report = run(tmp_path, '--structure', path, '--backends', 'onnxruntime',
                       '--batch-sizes', '1', '--no-plot')
    (record, ) = report['results']
    assert record['structure'] == dict(mode='structure', file=path)
    assert set(record['latency']) == {'onnxruntime'}
    assert abs(record['flops']['ratio'] - direct_flops_ratio(config, structure)) < 1e-12
    assert record['non_multiple_of_8'] > 0  # round(0.55 * 16) = 9 channels, etc.
