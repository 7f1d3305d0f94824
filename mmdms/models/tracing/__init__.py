"""Discover prunable channels and blocks by recording one real forward pass."""
from .channel_tracer import (ChannelTracer, ConsumerSite, FrozenRecord, HeadSite, ParamSlot,
                             ResidualBlock, TraceResult, trace_channels)
from .groups import ChannelGroup, PruningGraph, build_pruning_graph
from .union_find import UnionFind

__all__ = [
    'ChannelTracer', 'trace_channels', 'TraceResult', 'ParamSlot', 'ConsumerSite',
    'ResidualBlock', 'HeadSite', 'FrozenRecord', 'UnionFind', 'ChannelGroup', 'PruningGraph',
    'build_pruning_graph'
]
