from .arch import arch_to_str, parse_arch
from .classifier import SPOSClassifier
from .ops import IdentityOp, InvertedResidual, PoolOp, ZeroOp
from .supernet import SinglePathSupernet

__all__ = [
    'SinglePathSupernet', 'SPOSClassifier', 'InvertedResidual', 'IdentityOp', 'PoolOp', 'ZeroOp',
    'parse_arch', 'arch_to_str'
]
