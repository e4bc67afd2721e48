"""Which volunteers may take which shift: the only pairs the solver ever builds a variable for.

A pair is eligible unless it is forbidden, the shift overlaps one of the volunteer's unavailable
windows, the volunteer lives farther than `rules.max_distance_km` from the post, or the
volunteer's cap for the shift's kind is 0. Skills are not a filter: a volunteer without a skill
still counts towards the head count.

At federation scale (40,000 volunteers, thousands of shifts) the distance filter dominates, so
volunteers are bucketed on a grid of cells about `max_distance_km` wide and each distinct post
location only looks at the cells around it, with the exact distances computed in numpy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from scheduling.model.data import EARTH_RADIUS_KM
from scheduling.problem import Location, Problem, Volunteer

KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0


class _VolunteerGrid:
    """Volunteers with a location, bucketed by (lat, lon) cells of `cell_deg` degrees."""

    def __init__(self, volunteers: list[tuple[int, Location]], radius_km: float) -> None:
        self.radius_km = radius_km
        self.cell_deg = max(radius_km / KM_PER_DEGREE, 1e-6)
        self.cells: dict[tuple[int, int], list[int]] = defaultdict(list)
        positions = np.array([p for p, _ in volunteers], dtype=np.int64)
        self.positions = positions
        self.lat = np.radians(np.array([loc.lat for _, loc in volunteers], dtype=np.float64))
        self.lon = np.radians(np.array([loc.lon for _, loc in volunteers], dtype=np.float64))
        for row, (_, location) in enumerate(volunteers):
            self.cells[self._cell(location.lat, location.lon)].append(row)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell_deg), math.floor(lon / self.cell_deg)

    def within(self, location: Location) -> list[int]:
        """Volunteer positions within the radius of a location, in problem order."""
        lat_row, lon_col = self._cell(location.lat, location.lon)
        lat_span = self.radius_km / KM_PER_DEGREE + self.cell_deg
        extreme_lat = min(89.999, abs(location.lat) + lat_span)
        cos_lat = math.cos(math.radians(extreme_lat))
        lon_deg = self.radius_km / (KM_PER_DEGREE * cos_lat) if cos_lat > 1e-9 else 360.0
        lat_cells = math.ceil(lat_span / self.cell_deg)
        if abs(location.lon) + lon_deg + self.cell_deg >= 180.0:
            # Near the antimeridian or a pole the cell walk would wrap; checking everyone is
            # rare there and simply correct.
            rows = list(range(len(self.positions)))
        else:
            lon_cells = math.ceil(lon_deg / self.cell_deg) + 1
            rows = []
            for dlat in range(-lat_cells, lat_cells + 1):
                for dlon in range(-lon_cells, lon_cells + 1):
                    rows.extend(self.cells.get((lat_row + dlat, lon_col + dlon), ()))
        if not rows:
            return []
        candidates = np.unique(np.array(rows, dtype=np.int64))
        lat1, lon1 = math.radians(location.lat), math.radians(location.lon)
        lat2, lon2 = self.lat[candidates], self.lon[candidates]
        h = (
            np.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        )
        km = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))
        keep = candidates[km <= self.radius_km]
        return sorted(int(p) for p in self.positions[keep])


def _reachable(problem: Problem) -> dict[Location | None, list[int]]:
    """Volunteer positions allowed by distance, per distinct shift location."""
    everyone = list(range(len(problem.volunteers)))
    radius = problem.rules.max_distance_km
    locations = {shift.location for shift in problem.shifts}
    if radius is None:
        return dict.fromkeys(locations, everyone)
    unlocated = [p for p, v in enumerate(problem.volunteers) if v.location is None]
    located = [(p, v.location) for p, v in enumerate(problem.volunteers) if v.location is not None]
    grid = _VolunteerGrid(located, radius) if located else None
    reachable: dict[Location | None, list[int]] = {}
    for location in locations:
        if location is None or grid is None:
            reachable[location] = everyone
        else:
            reachable[location] = sorted(unlocated + grid.within(location))
    return reachable


def _blocked(volunteer: Volunteer, start: float, end: float) -> bool:
    return any(
        w.start.timestamp() < end and start < w.end.timestamp() for w in volunteer.unavailable
    )


def eligible_positions(problem: Problem) -> list[list[int]]:
    """For each shift (by position), the positions of the volunteers who may take it."""
    forbidden: dict[str, set[str]] = defaultdict(set)
    for pair in problem.forbidden:
        forbidden[pair.shift].add(pair.volunteer)
    reachable = _reachable(problem)
    volunteers = problem.volunteers
    busy = {p for p, v in enumerate(volunteers) if v.unavailable}
    capped = {p for p, v in enumerate(volunteers) if 0 in v.limits.max_shifts_by_kind.values()}
    result: list[list[int]] = []
    for shift in problem.shifts:
        candidates = reachable[shift.location]
        blocked = forbidden.get(shift.id)
        if not busy and not capped and not blocked:
            result.append(candidates)
            continue
        start, end = shift.start.timestamp(), shift.end.timestamp()
        keep = []
        for position in candidates:
            volunteer = volunteers[position]
            if blocked and volunteer.id in blocked:
                continue
            if position in busy and _blocked(volunteer, start, end):
                continue
            if position in capped and volunteer.limits.max_shifts_by_kind.get(shift.kind) == 0:
                continue
            keep.append(position)
        result.append(keep)
    return result


def eligible_pairs(problem: Problem) -> dict[str, list[str]]:
    """Map each shift id to the ids of the volunteers who may take it.

    Excludes forbidden pairs, overlaps with an unavailable window, distances beyond
    `max_distance_km` and kinds the volunteer is capped at 0 for.
    """
    volunteer_ids = [v.id for v in problem.volunteers]
    return {
        shift.id: [volunteer_ids[p] for p in positions]
        for shift, positions in zip(problem.shifts, eligible_positions(problem), strict=True)
    }


def pairs_by_volunteer(eligible: dict[str, list[str]]) -> dict[str, list[str]]:
    """Invert an eligibility map: volunteer id → shift ids, in shift order."""
    out: dict[str, list[str]] = defaultdict(list)
    for shift_id, volunteer_ids in eligible.items():
        for volunteer_id in volunteer_ids:
            out[volunteer_id].append(shift_id)
    return dict(out)


def count_pairs(eligible: Iterable[list[int]] | dict[str, list[str]]) -> int:
    values = eligible.values() if isinstance(eligible, dict) else eligible
    return sum(len(v) for v in values)
