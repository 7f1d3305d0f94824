"""YOLOv8 on BCCD: search -> export -> test with the stock tools, on a few real images."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmdms_testing import REPO

pytestmark = pytest.mark.slow


def run(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_yolov8_bccd_search_export_test(tmp_path):
    if not osp.isfile(osp.join(REPO, 'data', 'bccd', 'annotations', 'train.json')):
        pytest.skip('data/bccd not prepared')
    work = str(tmp_path / 'search')
    small = ['train_dataloader.dataset.indices=4', 'train_dataloader.batch_size=2',
             'val_dataloader.dataset.indices=4', 'val_dataloader.batch_size=2']
    run(['tools/train.py', 'configs/dms/yolov8n_dms_bccd.py', '--work-dir', work,
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'] + small, REPO)
    export = str(tmp_path / 'export')
    run(['tools/export_pruned.py', 'configs/dms/yolov8n_dms_bccd.py',
         osp.join(work, 'epoch_1.pth'), '--out-dir', export], REPO)
    summary = json.load(open(osp.join(export, 'summary.json')))
    assert summary['exported']['flops'] <= summary['original']['flops']
    assert summary['exported_flops_ratio'] == pytest.approx(summary['flops_ratio'], rel=0.02)
    out = run(['tools/test.py', osp.join(export, 'pruned_config.py'),
               osp.join(export, 'pruned.pth'), '--work-dir', str(tmp_path / 'test'),
               '--cfg-options', 'test_dataloader.dataset.indices=4',
               'test_dataloader.batch_size=2'], REPO)
    assert 'coco/bbox_mAP' in out
