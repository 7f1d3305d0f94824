"""Plot per-layer widths and per-stage depths: original vs current."""
from mmdms.utils.fileio import atomic_write


def save_figure(fig, path: str, dpi: int = 110) -> str:
    """Lay out, write atomically (no half-written image) and close a matplotlib figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    finally:
        plt.close(fig)
    return path


def plot_structure(summary: dict, path: str, title: str = 'DMS structure') -> str:
    """Bar chart of kept/original per unit (width, heads) and per stage (depth); atomic write."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    units = summary['units']
    width = [u for u in units if u['kind'] in ('channel', 'head')]
    depth = [u for u in units if u['kind'] == 'block']
    fig, axes = plt.subplots(
        2, 1, figsize=(max(8, 0.25 * len(width) + 2), 7),
        gridspec_kw=dict(height_ratios=[3, 1.4]))
    ax = axes[0]
    xs = range(len(width))
    ax.bar(xs, [u['size'] for u in width], color='#d0d7e1', label='original')
    ax.bar(xs, [u['kept'] for u in width], color='#3b6ea8', label='kept')
    ax.set_ylabel('channels / heads')
    ax.set_xticks(list(xs))
    ax.set_xticklabels([u['unit'].replace('backbone.', '')[-28:] for u in width],
                       rotation=90, fontsize=6)
    ax.legend(loc='upper left')
    ax.set_title(f'{title}: FLOPs {summary["flops_ratio"]:.3f}, '
                 f'params {summary["params_ratio"]:.3f} of the supernet')
    ax = axes[1]
    xs = range(len(depth))
    ax.bar(xs, [u['size'] for u in depth], color='#e6d5c3', label='original')
    ax.bar(xs, [u['kept'] for u in depth], color='#b5651d', label='kept')
    ax.set_ylabel('removable blocks')
    ax.set_xticks(list(xs))
    ax.set_xticklabels([u['unit'].replace('depth:', '').replace('backbone.', '')
                        for u in depth], rotation=30, fontsize=7)
    ax.legend(loc='upper left')
    return save_figure(fig, path)
