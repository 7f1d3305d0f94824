"""Export a DMS search checkpoint as a physically smaller model of the original classes.

    python tools/export_pruned.py CONFIG CHECKPOINT --out-dir DIR [--divisor 8]
        [--target-flops 0.5|50%|4.1G] [--input-shape 1 3 224 224]

Writes DIR/pruned.pth (state_dict), DIR/structure.json (kept indices), DIR/pruned_config.py
(train/test it with tools/train.py and tools/test.py), DIR/summary.json and DIR/structure.png,
all or nothing (a failed export leaves DIR as it was).

``--target-flops`` scales all searched widths by one common factor (importance still decides
which channels stay) until the exported model has that many FLOPs, within ``--tolerance``;
``--divisor`` rounds every width to a multiple of it (with or without a target).
"""
import argparse
import sys

from mmdms.export import ExportError, StructureError, export_pruned


def parse_args():
    parser = argparse.ArgumentParser(description='Export a DMS-searched model')
    parser.add_argument('config', help='the search config')
    parser.add_argument('checkpoint', help='a checkpoint written by the search')
    parser.add_argument('--out-dir', required=True, help='folder for the exported files')
    parser.add_argument('--input-shape', type=int, nargs='+',
                        help='input for FLOPs counting (default: the config\'s input_shape)')
    parser.add_argument('--target-flops',
                        help='rescale the widths to this budget: a fraction of the supernet '
                        '(0.5 or 50%%) or an absolute count (4.1G, 300M)')
    parser.add_argument('--divisor', type=int, default=1,
                        help='round every width to a multiple of it (e.g. 8)')
    parser.add_argument('--tolerance', type=float, default=0.01,
                        help='accepted relative error of --target-flops (default 0.01)')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        summary = export_pruned(args.config, args.checkpoint, args.out_dir,
                                tuple(args.input_shape) if args.input_shape else None,
                                target_flops=args.target_flops, divisor=args.divisor,
                                tolerance=args.tolerance)
    except (ExportError, StructureError, FileNotFoundError) as e:
        print(f'export failed: {e}', file=sys.stderr)
        sys.exit(1)
    o, e = summary['original'], summary['exported']
    if 'target_flops_ratio' in summary:
        note = '' if summary['within_tolerance'] else \
            f'  (NOT within {args.tolerance:.1%}: the widths are too coarse)'
        print(f'widths scaled by {summary["width_scale"]:.3f}: searched FLOPs ratio '
              f'{summary["searched_flops_ratio"]:.3f} -> target '
              f'{summary["target_flops_ratio"]:.3f}{note}')
    print(f'FLOPs  {o["flops"] / 1e6:10.2f} M -> {e["flops"] / 1e6:10.2f} M '
          f'({summary["exported_flops_ratio"]:.3f}x)')
    print(f'params {o["params"] / 1e6:10.3f} M -> {e["params"] / 1e6:10.3f} M '
          f'({summary["exported_params_ratio"]:.3f}x)')
    print(f'written to {args.out_dir}: pruned.pth, structure.json, pruned_config.py, '
          'summary.json, structure.png')


if __name__ == '__main__':
    main()
