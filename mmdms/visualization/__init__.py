from .structure_plot import plot_structure

__all__ = ['plot_structure']
