from .dtopk_units import DTopkBlockUnit, DTopkChannelUnit, DTopkHeadUnit, DTopkUnit

__all__ = ['DTopkUnit', 'DTopkChannelUnit', 'DTopkBlockUnit', 'DTopkHeadUnit']
