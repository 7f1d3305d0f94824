"""tools/experiments/bccd_yolov8_dms_vs_yolov8n.py (issue #8, table 2) and its helpers.

Unit tests check the per-class COCO numbers against hand-made predictions and the learning-rate
line across phases; the smoke test runs the real driver (``--smoke``: 8 BCCD images at 160x160,
one seed, two iterations per phase) and checks its numbers against independent measurements,
then that a second invocation trains nothing.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from mmdms_testing import REPO
from mmdms.analysis import count_complexity
from mmdms.registry import MODELS
from mmdms.utils import register_all_modules

sys.path.insert(0, osp.join(REPO, 'tools', 'experiments'))
from dmsexp.detection import DetectionExperiment, coco_per_class  # noqa: E402

register_all_modules(init_default_scope=False)
DRIVER = osp.join(REPO, 'tools', 'experiments', 'bccd_yolov8_dms_vs_yolov8n.py')
SMOKE = osp.join(REPO, 'configs', 'experiments', 'bccd_yolov8_dms_vs_yolov8n_smoke.py')
FULL = osp.join(REPO, 'configs', 'experiments', 'bccd_yolov8_dms_vs_yolov8n.py')
BCCD = osp.join(REPO, 'data', 'bccd', 'annotations', 'train.json')
CLASSES = ('RBC', 'WBC', 'Platelets')


def _coco_files(tmp_path, drop_class=None):
    """Two images, one box of each class per image; predictions = ground truth."""
    cats = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    images = [dict(id=i, file_name=f'{i}.jpg', width=200, height=200) for i in (7, 9)]
    anns, dets = [], []
    for img in images:
        for k, cat in enumerate(cats):
            box = [10.0 + 50 * k, 20.0, 30.0, 40.0]
            anns.append(dict(id=len(anns) + 1, image_id=img['id'], category_id=cat['id'],
                             bbox=box, area=box[2] * box[3], iscrowd=0))
            if cat['name'] != drop_class:
                dets.append(dict(image_id=img['id'], category_id=cat['id'], bbox=box,
                                 score=0.9))
    gt, pred = tmp_path / 'gt.json', tmp_path / 'pred.json'
    gt.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    pred.write_text(json.dumps(dets))
    return str(gt), str(pred)


def test_coco_per_class_perfect_and_missing_class(tmp_path):
    gt, pred = _coco_files(tmp_path)
    out = coco_per_class(gt, pred)
    assert out['mAP'] == pytest.approx(1.0) and out['mAP_50'] == pytest.approx(1.0)
    assert set(out['per_class']) == set(CLASSES) and out['images'] == 2
    for c in CLASSES:
        assert out['per_class'][c]['AP'] == pytest.approx(1.0)
        assert out['per_class'][c]['instances'] == 2
    gt, pred = _coco_files(tmp_path, drop_class='WBC')
    out = coco_per_class(gt, pred)
    assert out['per_class']['WBC']['AP'] == pytest.approx(0.0)
    assert out['per_class']['RBC']['AP50'] == pytest.approx(1.0)
    assert out['mAP'] == pytest.approx(2 / 3)
    # only the first image is evaluated: its predictions still match
    assert coco_per_class(gt, pred, num_images=1)['images'] == 1


def test_coco_per_class_without_detections(tmp_path):
    gt, pred = _coco_files(tmp_path)
    open(pred, 'w').write('[]')
    out = coco_per_class(gt, pred)
    assert out['mAP'] == 0.0 and all(v['AP'] == 0.0 for v in out['per_class'].values())


def _lrs(ctx, iters, offset, total, lr=0.01):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                  for s in ctx.lr_schedule(iters, offset, total)]
    lrs = []
    for _ in range(iters):
        lrs.append(optimizer.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    return lrs


@pytest.mark.filterwarnings('ignore:Detected call of `scheduler.step\\(\\)`')
@pytest.mark.skipif(not osp.isfile(BCCD), reason='data/bccd not prepared')
def test_lr_line_warms_up_decays_and_continues_across_phases(tmp_path):
    exp = Config.fromfile(FULL)
    ctx = DetectionExperiment(exp, str(tmp_path), REPO)
    assert (ctx.iters_per_epoch, ctx.total, ctx.search_iters) == (26, 520, 104)
    whole = _lrs(ctx, ctx.total, 0, ctx.total)
    w = exp.warmup_iters
    assert whole[0] == pytest.approx(0.01 * exp.warmup_start_factor * 1.0)
    assert max(whole) == pytest.approx(whole[w]) and whole[w] == pytest.approx(
        0.01 * (1 - 0.99 * w / ctx.total), rel=1e-3)
    assert whole[-1] == pytest.approx(0.01 * (1 - 0.99 * (ctx.total - 1) / ctx.total), rel=1e-4)
    # search (first part of the line) + inherited retraining (the rest) = the whole line
    search = _lrs(ctx, ctx.search_iters, 0, ctx.total)
    rest = _lrs(ctx, ctx.total - ctx.search_iters, ctx.search_iters, ctx.total)
    assert search[-1] == pytest.approx(whole[ctx.search_iters - 1], rel=5e-3)
    assert rest[0] == pytest.approx(whole[ctx.search_iters], rel=5e-3)
    assert rest[-1] == pytest.approx(whole[-1], rel=1e-3)
    # retraining from scratch: a fresh warm-up and decay over its own iterations
    fresh = _lrs(ctx, ctx.total - ctx.search_iters, 0, ctx.total - ctx.search_iters)
    assert fresh[0] == pytest.approx(whole[0]) and fresh[-1] < 0.0002


def _run(args, timeout=900):
    proc = subprocess.run([sys.executable, DRIVER] + args, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(not osp.isfile(BCCD), reason='data/bccd not prepared')
def test_smoke_driver_end_to_end(tmp_path):
    work = tmp_path / 'work'
    out = _run(['--smoke', '--work-dir', str(work)])
    assert '3/3 runs finished' in out
    report = json.loads((work / 'bccd.json').read_text())
    assert (work / 'bccd_widths.png').stat().st_size > 0
    md = (work / 'results.md').read_text()
    assert '<!-- bccd:begin -->' in md and '**Final**' in md and 'AP Platelets' in md
    runs = {r['arm']: r for r in report['runs']}
    assert set(runs) == {'reference', 'dms_np', 'dms_np_inherit'}
    exp = Config.fromfile(SMOKE)
    shape = (1, 3, exp.img_size, exp.img_size)

    # the reference is YOLOv8-n, counted independently here
    ctx = DetectionExperiment(exp, str(work), REPO)
    yolov8n = MODELS.build(ctx.scoped(ctx.reference_arch)).eval()
    ref_flops = count_complexity(yolov8n, torch.randn(*shape),
                                 lambda m, x: m(x, mode='tensor'))['flops']
    assert runs['reference']['flops'] == pytest.approx(ref_flops)
    models = json.loads((work / 'models.json').read_text())
    assert models['target_ratio'] == pytest.approx(
        ref_flops / models['supernet']['flops'])

    total = exp.epochs * 2  # 8 images, batch 4
    for arm, r in runs.items():
        assert r['total_iters'] == total
        # equal FLOPs: the DMS model within the export tolerance of YOLOv8-n
        assert r['flops'] == pytest.approx(ref_flops, rel=exp.flops_tolerance)
        assert abs(r['flops_vs_reference'] - 1) <= exp.flops_tolerance
        assert r['test_images'] == exp.test_images
        for key in ('mAP', 'mAP_50', 'mAP_75'):
            assert 0.0 <= r[key] <= 1.0
        assert set(r['per_class']) == set(CLASSES)
        for c in CLASSES:
            assert 0.0 <= r['per_class'][c]['AP'] <= 1.0
            assert 0.0 <= r['per_class'][c]['AP50'] <= 1.0
        assert 'coco/bbox_mAP' in r['stock_metrics']
        assert r['latency_ms'] > 0 and r['cpu_seconds'] > 0
    for arm in ('dms_np', 'dms_np_inherit'):
        r = runs[arm]
        assert r['iters'] == dict(search=exp.search_epochs * 2,
                                  retrain=(exp.epochs - exp.search_epochs) * 2)
        assert r['structure'] == runs['dms_np']['structure']  # one shared search + export
        # the DMS model is the pruned supernet with widths in multiples of the divisor
        assert r['params'] != runs['reference']['params']
        for unit in r['widths']:
            if unit['kind'] == 'channel' and unit['kept'] != unit['size']:
                assert unit['kept'] % r['export_divisor'] == 0, unit
    assert runs['dms_np']['retrain_init'] == 'scratch'
    assert runs['dms_np_inherit']['retrain_init'] == 'searched weights'
    assert [lt['seed'] for lt in report['latency']] == [0]
    summary = {row['arm']: row for row in report['summary']}
    assert summary['dms_np']['per_class']['WBC']['AP'] == runs['dms_np']['per_class']['WBC']['AP']

    # a second invocation finds every step done and trains nothing
    out = _run(['--smoke', '--work-dir', str(work)])
    assert out.count('done earlier') == 3
    invocations = json.loads((work / 'invocations.json').read_text())['invocations']
    assert invocations[-1]['steps_executed'] == 0 and invocations[-1]['failed'] == []

    # the diagnostic arm reuses the search and retrains its structure for every iteration
    out = _run(['--smoke', '--work-dir', str(work), '--arms', 'reference', 'dms_np',
                'dms_np_inherit', 'dms_full_retrain'])
    assert out.count('done earlier') == 3 and '4/4 runs finished' in out
    invocations = json.loads((work / 'invocations.json').read_text())['invocations']
    assert invocations[-1]['steps_executed'] == 1  # its retraining only
    full = json.loads((work / 'results' / 'dms_full_retrain_s0.json').read_text())
    assert full['iters'] == dict(retrain=total)
    assert full['search_iters_not_counted'] == exp.search_epochs * 2
    assert full['structure'] == runs['dms_np']['structure']
    assert full['flops'] == runs['dms_np']['flops']
