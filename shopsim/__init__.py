"""Deterministic simulator of the shop's operational sources (demo and tests)."""

from shopsim.config import SimConfig
from shopsim.simulator import Simulator

__all__ = ["SimConfig", "Simulator"]
