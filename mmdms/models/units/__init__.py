from .dtopk_units import DTopkBlockUnit, DTopkChannelUnit, DTopkUnit

__all__ = ['DTopkUnit', 'DTopkChannelUnit', 'DTopkBlockUnit']
