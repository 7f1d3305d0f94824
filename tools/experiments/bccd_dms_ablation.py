"""Issue #8, investigation of table 2: one-factor-at-a-time variants of the BCCD DMS search
(resource-loss weight, depth pruning, structure lr, search length, mask temperature), each
compared with the main experiment's YOLOv8-n of the same seed, resumable:

    python tools/experiments/bccd_dms_ablation.py \\
        --work-dir work_dirs/exp_bccd_sweep --reference-work-dir work_dirs/exp_bccd
    python tools/experiments/bccd_dms_ablation.py --smoke      # CI size

Every variant is an ordinary run of ``dmsexp.detection.DetectionExperiment`` in
``WORK_DIR/<variant>`` with the variant's overrides merged into the main experiment config
(the same layout as ``bccd_yolov8_dms_vs_yolov8n.py --work-dir WORK_DIR/<variant>``). The
table goes to the ``bccd_ablation`` section of ``docs/results.md``, with
``docs/results/bccd_ablation.{json,png}`` (``--smoke``: in the work dir). Variants are listed
in ``configs/experiments/bccd_dms_ablation.py``.
"""
import argparse
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import torch  # noqa: E402

from bccd_yolov8_dms_vs_yolov8n import FIXED, run_line  # noqa: E402
from dmsexp import ablation  # noqa: E402
from dmsexp.detection import DET_ARMS, DetectionExperiment, load_results  # noqa: E402
from dmsexp.detection_report import DET_LABELS, plot_widths  # noqa: E402
from dmsexp.driver import check_settings, make_logger, open_work_dir  # noqa: E402
from dmsexp.steps import load_json  # noqa: E402
from mmdms.utils import register_all_modules, setup_torch_load  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'experiments', 'bccd_dms_ablation.py')
SMOKE_CONFIG = osp.join(REPO, 'configs', 'experiments', 'bccd_dms_ablation_smoke.py')


def _ratio(key):
    return lambda r: f'{r[key]:.3f}' if key in r else 'n/a'


SPEC = dict(
    title='BCCD: why the DMS-searched YOLOv8 loses (investigation)',
    intro='One DMS search setting at a time against the main experiment\'s settings, every '
    'arm at YOLOv8-n\'s FLOPs (the export rescales the searched widths). The two seeds of the '
    'main table differ by up to 0.011 mAP, so single-seed differences below ~0.01 are noise.',
    metric='mAP', metric_label='test mAP', digits=3, baseline_arm='reference',
    baseline_label='YOLOv8-n', arm_labels=DET_LABELS,
    extra_columns=(
        ('AP Platelets', lambda r: f'{r["per_class"]["Platelets"]["AP"]:.3f}'),
        ('params M', lambda r: f'{r["params"] / 1e6:.2f}'),
        ('searched FLOPs ratio', _ratio('searched_flops_ratio')),
        ('blocks kept (last seed)', ablation.blocks_kept)))


def parse_args():
    return ablation.add_ablation_args(
        argparse.ArgumentParser(description='BCCD: why the DMS-searched YOLOv8 loses -- '
                                'one-factor-at-a-time search variants (issue #8)'),
        work_dir='exp_bccd_sweep', section='bccd_ablation').parse_args()


def plot_variant_widths(cfg, work_dir: str, rows, reference, results_dir: str):
    """Every variant's searched widths (first seed) next to the main experiment's search of
    the same seed and YOLOv8-n's widths: where does a setting move the FLOPs?"""
    seed = min(s for v in cfg.variants for s in ablation.variant_seeds(cfg, v))
    runs = [dict(r, label=f'main settings, seed {seed}') for r in reference
            if r['arm'] == 'dms_np' and r['seed'] == seed]
    runs += [dict(row['runs'][0], label=row['variant']) for row in rows
             if row['variant'] != 'reference' and row['arm'] == 'dms_np' and row['runs']]
    models = [osp.join(work_dir, v['name'], 'models.json') for v in cfg.variants]
    models = [p for p in models if osp.isfile(p)]
    if not runs or not models:
        return None
    return plot_widths(runs, load_json(models[0])['reference_widths'],
                       osp.join(results_dir, 'bccd_ablation_widths.png'),
                       label=lambda r: r['label'],
                       title='BCCD search variants at the FLOPs of YOLOv8-n: kept fraction '
                       'of every width unit and depth unit of the supernet')


def write_reports(args, cfg, work_dir: str, pending: int, log) -> None:
    reference = (load_results(osp.abspath(args.reference_work_dir))
                 if args.reference_work_dir else [])
    ablation.write_report(
        args, cfg, ablation.AblationSpec(**SPEC), section='bccd_ablation',
        driver='tools/experiments/bccd_dms_ablation.py', repo=REPO, work_dir=work_dir,
        reference_runs=reference,
        variant_runs=lambda name: load_results(osp.join(work_dir, name)),
        pending=pending, xlabel='BCCD test mAP (COCO box AP)',
        run_keys=('seed', 'mAP', 'mAP_50', 'per_class', 'flops', 'params',
                  'searched_flops_ratio', 'structure'), log=log,
        extra_figures=lambda rows, results_dir: [(
            'Kept fraction of every width and depth unit of the supernet: each variant\'s '
            'search (first seed) against the main settings\' search of the same seed and '
            'YOLOv8-n.', plot_variant_widths(cfg, work_dir, rows, reference, results_dir))])


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    torch.set_num_threads(args.threads)
    cfg = ablation.load_ablation(args, CONFIG, SMOKE_CONFIG, DET_ARMS)
    work_dir = open_work_dir(args, 'exp_bccd_sweep', REPO)
    log = make_logger(work_dir, tag='ablation')

    def open_variant(variant, exp, vdir):
        check_settings(vdir, exp, FIXED)
        return DetectionExperiment(exp, vdir, REPO, make_logger(vdir, tag='ablation'))

    ablation.run_variants(
        args, cfg, work_dir, log, open_variant=open_variant,
        keys=lambda v: [(arm, s) for s in ablation.variant_seeds(cfg, v)
                        for arm in DET_ARMS if arm in v['arms']],
        describe=lambda arm, seed: f'{arm} seed {seed}', run_line=run_line,
        write_reports=lambda pending: write_reports(args, cfg, work_dir, pending, log))

if __name__ == '__main__':
    main()
