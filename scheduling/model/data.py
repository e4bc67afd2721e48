"""Derived, integer-only facts about a Problem that the greedy, the model and the LNS share.

Everything here is computed once: epoch minutes, horizon day, calendar week and weekend of each
shift, and the per-volunteer lookups. Rules then work on small integers, never on datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from scheduling.problem import Location, Problem, Shift, Volunteer

EARTH_RADIUS_KM = 6371.0


def distance_km(a: Location, b: Location) -> float:
    """Great-circle (haversine) distance."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def radians_of(places: Iterable[Location | None]) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes in radians, NaN where there is no location."""
    located = list(places)
    lat = np.radians([p.lat if p is not None else np.nan for p in located])
    lon = np.radians([p.lon if p is not None else np.nan for p in located])
    return lat, lon


def haversine_term(a_lat: Any, a_lon: Any, b_lat: Any, b_lon: Any) -> np.ndarray:
    """The haversine term of two positions in radians (numpy broadcasting): it grows with the
    great-circle distance, so it ranks by distance; `km_of_term` turns it into kilometres."""
    return np.asarray(
        np.sin((b_lat - a_lat) / 2) ** 2
        + np.cos(a_lat) * np.cos(b_lat) * np.sin((b_lon - a_lon) / 2) ** 2
    )


def km_of_term(h: np.ndarray) -> np.ndarray:
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h))))


def whole_km(volunteer: Volunteer, shift: Shift) -> int:
    """Kilometres (rounded down) that the distance weight charges; 0 when a location is unknown."""
    if volunteer.location is None or shift.location is None:
        return 0
    return math.floor(distance_km(volunteer.location, shift.location))


@dataclass(frozen=True, slots=True)
class ShiftFacts:
    index: int
    id: str
    start: int  # epoch minutes
    end: int
    minutes: int
    day: int  # horizon day of the start, in the problem's time zone
    week: int  # calendar week (Monday first) counted from the horizon's first week
    weekend: int | None  # the week index if the start day is a weekend day, else None
    kind: str


@dataclass(slots=True)
class ProblemIndex:
    """Integer views of a Problem, keyed by position and by id."""

    problem: Problem
    shifts: list[ShiftFacts] = field(default_factory=list)
    shift_pos: dict[str, int] = field(default_factory=dict)
    volunteer_pos: dict[str, int] = field(default_factory=dict)
    days: int = 0

    @classmethod
    def build(cls, problem: Problem) -> ProblemIndex:
        index = cls(problem=problem, days=problem.horizon_days)
        tz = problem.tz
        first_monday = problem.horizon_start - timedelta(days=problem.horizon_start.weekday())
        weekend_days = set(problem.rules.weekend_days)
        for position, shift in enumerate(problem.shifts):
            local_day = shift.start.astimezone(tz).date()
            week = (local_day - first_monday).days // 7
            index.shifts.append(
                ShiftFacts(
                    index=position,
                    id=shift.id,
                    start=int(shift.start.timestamp() // 60),
                    end=int(shift.end.timestamp() // 60),
                    minutes=shift.minutes,
                    day=(local_day - problem.horizon_start).days,
                    week=week,
                    weekend=week if local_day.weekday() in weekend_days else None,
                    kind=shift.kind,
                )
            )
            index.shift_pos[shift.id] = position
        index.volunteer_pos = {v.id: position for position, v in enumerate(problem.volunteers)}
        return index

    def in_horizon(self, day: int) -> bool:
        return 0 <= day < self.days


def conflict_cliques(facts: Sequence[ShiftFacts], rest: int) -> list[list[int]]:
    """Maximal groups of mutually conflicting shifts (overlap or too little rest).

    Two shifts conflict exactly when their intervals stretched by the rest time, [start,
    end + rest), overlap; that is an interval graph, whose maximal cliques are the sets of
    intervals alive just before one of them expires. One at-most-one per clique covers every
    conflicting pair with far fewer constraints than pairwise ones.
    """
    ordered = sorted(facts, key=lambda f: (f.start, f.end))
    cliques: list[list[int]] = []
    active: list[ShiftFacts] = []
    grown = False
    for fact in ordered:
        alive = [a for a in active if a.end + rest > fact.start]
        if len(alive) < len(active) and grown and len(active) > 1:
            cliques.append([a.index for a in active])
            grown = False
        active = alive
        active.append(fact)
        grown = True
    if grown and len(active) > 1:
        cliques.append([a.index for a in active])
    return cliques


def conflicts(a: ShiftFacts, b: ShiftFacts, rest: int) -> bool:
    first, second = (a, b) if (a.start, a.end) <= (b.start, b.end) else (b, a)
    return second.start < first.end + rest


def ids(items: Iterable[Volunteer | Shift]) -> list[str]:
    return [item.id for item in items]
