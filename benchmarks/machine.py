"""What every benchmark prints first: the machine it ran on (kept in the package for `avatar-rt bench`)."""

from avatar_rt.bench.machine import machine

__all__ = ["machine"]
