"""Shared fixtures: simulated sources in temporary folders, binomial tolerance helper."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shopsim import SimConfig, Simulator
from shopsim.config import Rates

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def within_rate(observed: int, total: int, rate: float, sigmas: float = 4.0) -> bool:
    """True when observed/total is within `sigmas` binomial standard errors of rate."""
    assert total > 0, "no rows to measure a rate on"
    error = sigmas * math.sqrt(rate * (1 - rate) / total) + 1.0 / total
    return abs(observed / total - rate) <= error


@pytest.fixture
def make_sources(tmp_path: Path):
    def _make(days: int = 3, name: str = "sources", **kwargs: object) -> Simulator:
        rates = kwargs.pop("rates", Rates())
        sim = Simulator(tmp_path / name, SimConfig(rates=rates, **kwargs))  # type: ignore[arg-type]
        sim.advance(days)
        return sim

    return _make
