"""Factories for small roster problems, shared by the scheduling tests.

Times are UTC and the horizon starts on Monday 2026-12-07 unless a test says otherwise, so
`at(day, hour)` reads as "horizon day `day` at `hour`:00".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduling.problem import Location, Pair, Problem, Rules, Shift, Volunteer, Weights

HORIZON_START = date(2026, 12, 7)
CASES_DIR = Path(__file__).parent / "cases"


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Horizon day `day` at hour:minute UTC."""
    start = datetime(HORIZON_START.year, HORIZON_START.month, HORIZON_START.day, tzinfo=UTC)
    return start + timedelta(days=day, hours=hour, minutes=minute)


def make_shift(
    shift_id: str,
    day: int = 0,
    hour: int = 8,
    hours: int = 4,
    *,
    kind: str = "day",
    required: int = 1,
    capacity: int | None = None,
    location: Location | None = None,
    skills: dict[str, int] | None = None,
    **extra: Any,
) -> Shift:
    start = at(day, hour)
    return Shift(
        id=shift_id,
        start=start,
        end=start + timedelta(hours=hours),
        kind=kind,
        location=location,
        required=required,
        capacity=capacity,
        skills=skills or {},
        **extra,
    )


def make_problem(
    volunteers: Sequence[Volunteer],
    shifts: Sequence[Shift],
    *,
    days: int = 7,
    rules: Rules | None = None,
    weights: Weights | None = None,
    timezone: str = "UTC",
    pinned: Sequence[Pair] = (),
    forbidden: Sequence[Pair] = (),
    previous: Sequence[Pair] = (),
) -> Problem:
    return Problem(
        timezone=timezone,
        horizon_start=HORIZON_START,
        horizon_days=days,
        volunteers=tuple(volunteers),
        shifts=tuple(shifts),
        rules=rules or Rules(),
        weights=weights or Weights(),
        pinned=tuple(pinned),
        forbidden=tuple(forbidden),
        previous=tuple(previous),
    )


def pairs(*items: tuple[str, str]) -> list[Pair]:
    return [Pair(volunteer, shift) for volunteer, shift in items]


class Kit:
    """The factories above, handed to tests as the `kit` fixture (tests cannot import conftest)."""

    at = staticmethod(at)
    shift = staticmethod(make_shift)
    problem = staticmethod(make_problem)
    pairs = staticmethod(pairs)
    cases_dir = CASES_DIR


@pytest.fixture
def kit() -> Kit:
    return Kit()


@pytest.fixture
def cases_dir() -> Path:
    return CASES_DIR
