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
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from scheduling.model.data import EARTH_RADIUS_KM, haversine_term, km_of_term, radians_of
from scheduling.problem import Location, Pair, Problem, Volunteer

KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0


class _VolunteerGrid:
    """Volunteers with a location, bucketed by (lat, lon) cells of `cell_deg` degrees."""

    def __init__(self, volunteers: list[tuple[int, Location]], radius_km: float) -> None:
        self.radius_km = radius_km
        self.cell_deg = max(radius_km / KM_PER_DEGREE, 1e-6)
        positions = np.array([p for p, _ in volunteers], dtype=np.int64)
        self.positions = positions
        self.lat = np.radians(np.array([loc.lat for _, loc in volunteers], dtype=np.float64))
        self.lon = np.radians(np.array([loc.lon for _, loc in volunteers], dtype=np.float64))
        cells: dict[tuple[int, int], list[int]] = defaultdict(list)
        for row, (_, location) in enumerate(volunteers):
            cells[self._cell(location.lat, location.lon)].append(row)
        self.cells = {cell: np.array(rows, dtype=np.int64) for cell, rows in cells.items()}

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell_deg), math.floor(lon / self.cell_deg)

    def within(self, location: Location) -> np.ndarray:
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
            candidates = np.arange(len(self.positions), dtype=np.int64)
        else:
            lon_cells = math.ceil(lon_deg / self.cell_deg) + 1
            # Cells are disjoint, so their rows need no de-duplication.
            rows = [
                found
                for dlat in range(-lat_cells, lat_cells + 1)
                for dlon in range(-lon_cells, lon_cells + 1)
                if (found := self.cells.get((lat_row + dlat, lon_col + dlon))) is not None
            ]
            if not rows:
                return np.zeros(0, dtype=np.int64)
            candidates = np.concatenate(rows)
        lat1, lon1 = math.radians(location.lat), math.radians(location.lon)
        lat2, lon2 = self.lat[candidates], self.lon[candidates]
        km = km_of_term(haversine_term(lat1, lon1, lat2, lon2))
        return np.sort(self.positions[candidates[km <= self.radius_km]])


def _reachable(problem: Problem) -> dict[Location | None, np.ndarray]:
    """Volunteer positions allowed by distance, per distinct shift location (sorted arrays)."""
    everyone = np.arange(len(problem.volunteers), dtype=np.int64)
    radius = problem.rules.max_distance_km
    locations = {shift.location for shift in problem.shifts}
    if radius is None:
        return dict.fromkeys(locations, everyone)
    unlocated = np.array(
        [p for p, v in enumerate(problem.volunteers) if v.location is None], dtype=np.int64
    )
    located = [(p, v.location) for p, v in enumerate(problem.volunteers) if v.location is not None]
    grid = _VolunteerGrid(located, radius) if located else None
    reachable: dict[Location | None, np.ndarray] = {}
    for location in locations:
        if location is None or grid is None:
            reachable[location] = everyone
        else:
            reachable[location] = np.sort(np.concatenate([unlocated, grid.within(location)]))
    return reachable


class _Unavailability:
    """Unavailable windows bucketed by UTC day, so a shift looks only at windows near it."""

    DAY = 86_400

    def __init__(self, volunteers: tuple[Volunteer, ...]) -> None:
        buckets: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
        for position, volunteer in enumerate(volunteers):
            for window in volunteer.unavailable:
                start, end = window.start.timestamp(), window.end.timestamp()
                for day in range(int(start // self.DAY), int((end - 1e-9) // self.DAY) + 1):
                    buckets[day].append((position, start, end))
        self.buckets = {
            day: (
                np.array([i[0] for i in items], dtype=np.int64),
                np.array([i[1] for i in items], dtype=np.float64),
                np.array([i[2] for i in items], dtype=np.float64),
            )
            for day, items in buckets.items()
        }
        self.cache: dict[tuple[float, float], np.ndarray] = {}

    def blocked(self, start: float, end: float) -> np.ndarray:
        """Positions of volunteers with a window overlapping [start, end), sorted."""
        key = (start, end)
        found = self.cache.get(key)
        if found is None:
            hits = []
            for day in range(int(start // self.DAY), int((end - 1e-9) // self.DAY) + 1):
                bucket = self.buckets.get(day)
                if bucket is not None:
                    who, w_start, w_end = bucket
                    hits.append(who[(w_start < end) & (start < w_end)])
            found = np.unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)
            self.cache[key] = found
        return found


def reachable_positions(problem: Problem) -> dict[Location | None, np.ndarray]:
    """Volunteer positions within `max_distance_km`, per distinct shift location (sorted)."""
    return _reachable(problem)


def eligible_positions(
    problem: Problem, reachable: Mapping[Location | None, np.ndarray] | None = None
) -> list[list[int]]:
    """For each shift (by position), the positions of the volunteers who may take it.

    :param reachable: `reachable_positions(problem)` when the caller has it already.
    """
    return [people.tolist() for people in eligible_arrays(problem, reachable)]


def eligible_arrays(
    problem: Problem, reachable: Mapping[Location | None, np.ndarray] | None = None
) -> list[np.ndarray]:
    """`eligible_positions` as sorted int64 arrays: at federation scale (17 million pairs)
    turning them into Python lists costs more than finding them."""
    volunteers = problem.volunteers
    position = {v.id: p for p, v in enumerate(volunteers)}
    forbidden: dict[str, list[int]] = defaultdict(list)
    for pair in problem.forbidden:
        forbidden[pair.shift].append(position[pair.volunteer])
    capped: dict[str, list[int]] = defaultdict(list)
    for p, volunteer in enumerate(volunteers):
        for kind, cap in volunteer.limits.max_shifts_by_kind.items():
            if cap == 0:
                capped[kind].append(p)
    if reachable is None:
        reachable = _reachable(problem)
    unavailable = _Unavailability(volunteers)
    result: list[np.ndarray] = []
    out_mask = np.zeros(len(volunteers), dtype=bool)
    for shift in problem.shifts:
        candidates = reachable[shift.location]
        excluded = [
            unavailable.blocked(shift.start.timestamp(), shift.end.timestamp()),
            np.array(forbidden.get(shift.id, ()), dtype=np.int64),
            np.array(capped.get(shift.kind, ()), dtype=np.int64),
        ]
        out = np.concatenate(excluded)
        if len(out):
            out_mask[out] = True
            candidates = candidates[~out_mask[candidates]]
            out_mask[out] = False
        result.append(candidates)
    return result


def prune_candidates(
    problem: Problem, eligible: Sequence[Sequence[int]], per_person: int, keep: Iterable[Pair]
) -> list[list[int]]:
    """At most `per_person` x capacity (at least 8) candidates per shift, nearest first, plus
    every pair in `keep` (pinned, previous, wished for, the warm start).

    At federation scale every post has hundreds of eligible people; a model over all of them
    is too big to solve in a minute, and the nearest few per slot are where a good roster is.
    """
    shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
    volunteer_pos = {v.id: i for i, v in enumerate(problem.volunteers)}
    must: dict[int, set[int]] = defaultdict(set)
    for pair in keep:
        must[shift_pos[pair.shift]].add(volunteer_pos[pair.volunteer])
    lat, lon = radians_of(v.location for v in problem.volunteers)
    pruned: list[list[int]] = []
    for s, people in enumerate(eligible):
        shift = problem.shifts[s]
        limit = max(8, per_person * shift.max_people)
        if len(people) <= limit:
            pruned.append(list(people))
            continue
        candidates = np.array(people, dtype=np.int64)
        if shift.location is None:
            chosen = candidates[:limit]
        else:
            lat1, lon1 = math.radians(shift.location.lat), math.radians(shift.location.lon)
            h = np.nan_to_num(haversine_term(lat1, lon1, lat[candidates], lon[candidates]), nan=0.0)
            chosen = candidates[np.argpartition(h, limit - 1)[:limit]]
        allowed = set(people)
        pruned.append(sorted(set(chosen.tolist()) | (must.get(s, set()) & allowed)))
    _keep_every_volunteer(problem, eligible, pruned, per_person, lat, lon)
    return pruned


def _keep_every_volunteer(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    pruned: list[list[int]],
    per_person: int,
    lat: np.ndarray,
    lon: np.ndarray,
) -> None:
    """Give back every volunteer their `per_person` nearest eligible shifts.

    Nearest-per-shift alone drops whoever lives between posts: they are never among any
    post's nearest, so a roster of the pruned pairs leaves them idle while slots stay empty
    (at 40,000 volunteers the greedy filled 4,000 fewer slots on the pruned pairs).
    """
    sizes = np.fromiter((len(people) for people in eligible), dtype=np.int64, count=len(eligible))
    if not sizes.sum():
        return
    shift_of = np.repeat(np.arange(len(eligible), dtype=np.int64), sizes)
    volunteer_of = np.concatenate([np.asarray(people, dtype=np.int64) for people in eligible])
    shift_lat, shift_lon = radians_of(s.location for s in problem.shifts)
    h = np.nan_to_num(
        haversine_term(
            lat[volunteer_of], lon[volunteer_of], shift_lat[shift_of], shift_lon[shift_of]
        ),
        nan=0.0,
    )
    # One float sort instead of a two-key lexsort: h (a haversine term) lies in [0, 1], so
    # volunteer * 2 + h orders by volunteer, then by distance.
    order = np.argsort(volunteer_of * 2.0 + h)
    ranked_volunteers = volunteer_of[order]
    first = np.searchsorted(ranked_volunteers, ranked_volunteers, side="left")
    rank = np.arange(len(order)) - first
    keep = order[rank < per_person]
    added: dict[int, set[int]] = defaultdict(set)
    for s, v in zip(shift_of[keep].tolist(), volunteer_of[keep].tolist(), strict=True):
        added[s].add(v)
    for s, people in added.items():
        pruned[s] = sorted(set(pruned[s]) | people)


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


def positions_by_volunteer(
    eligible: Sequence[Sequence[int]] | Sequence[np.ndarray], volunteers: int
) -> list[list[int]]:
    """Invert eligibility by position: per volunteer position, their shift positions in order."""
    out: list[list[int]] = [[] for _ in range(volunteers)]
    for s, people in enumerate(eligible):
        for v in people:
            out[int(v)].append(s)
    return out


def count_pairs(eligible: Iterable[list[int]] | dict[str, list[str]]) -> int:
    values = eligible.values() if isinstance(eligible, dict) else eligible
    return sum(len(v) for v in values)
