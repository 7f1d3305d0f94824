"""Export a searched architecture as a standalone model + config to retrain with tools/train.py.

    PYTHONPATH=. python projects/rlnas/tools/export_subnet.py \
        projects/rlnas/configs/supernet_nbm_cifar10_random-label.py \
        --search-result work_dirs/rlnas/benchmark/search_angle_random_p50/search_results.json \
        [--weights work_dirs/rlnas/benchmark/supernet_random/final_weights.pth] \
        --out-dir work_dirs/rlnas/export
    PYTHONPATH=. python tools/train.py work_dirs/rlnas/export/subnet_<arch>.py
"""
import argparse
import json
import os.path as osp
import sys

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def parse_args():
    parser = argparse.ArgumentParser(description='Export one architecture of an RLNAS space')
    parser.add_argument('config', help='supernet config (defines the search space)')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--arch', help="architecture, e.g. '21101202'")
    which.add_argument('--search-result', help='search_results.json of EvolutionSearchLoop')
    parser.add_argument('--rank', type=int, default=0,
                        help='which of the search result top-k to export (0 = best)')
    parser.add_argument('--weights', help='trained supernet weights, to inherit (optional)')
    parser.add_argument('--retrain-config', help='config to copy (default: '
                        'projects/rlnas/configs/retrain_nbm_cifar10.py)')
    parser.add_argument('--out-dir', required=True)
    return parser.parse_args()


def main():
    args = parse_args()
    from projects.rlnas.rlnas.export import export_subnet
    arch = args.arch
    if args.search_result:
        with open(args.search_result) as f:
            top = json.load(f)['top_k']
        if not 0 <= args.rank < len(top):
            sys.exit(f'--rank {args.rank} out of range: the result holds {len(top)} candidates')
        arch = top[args.rank]['arch']
    paths = export_subnet(args.config, arch, args.out_dir, args.weights, args.retrain_config)
    for kind, path in paths.items():
        print(f'{kind}: {path}')
    print(f'retrain: PYTHONPATH=. python tools/train.py {paths["config"]}')


if __name__ == '__main__':
    main()
