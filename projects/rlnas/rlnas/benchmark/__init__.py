from .nas_bench_macro import NASBenchMacro, rank_correlations, ties_at_max

__all__ = ['NASBenchMacro', 'rank_correlations', 'ties_at_max']
