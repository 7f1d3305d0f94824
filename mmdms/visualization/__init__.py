from .structure_plot import plot_structure, save_figure

__all__ = ['plot_structure', 'save_figure']
