from .search_loop import PGNASSearchLoop, cost_matched_drop_rate, summarize

__all__ = ['PGNASSearchLoop', 'cost_matched_drop_rate', 'summarize']
