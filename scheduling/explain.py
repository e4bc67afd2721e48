"""Why a shift is short: reasons a coordinator can act on.

For each shift missing people or skills, every volunteer who could matter (everyone for a head
count, the holders of the skill for a skill slot) is put in the first bucket that keeps them off
the shift: forbidden (declined or blocked), unavailable (leave or away), too far, busy (already on
an overlapping, too-close, same-day or forbidden-succession shift), at a limit (shifts, minutes,
week, kind or consecutive days), or free. "Free" people could be added without breaking a hard
rule considered here; a reason with free people says the shortage is a trade-off (cost or a
stretch rule), one without says more people are needed.

A shortfall list is short, so the work per shortfall is one pass over the volunteers that
matter, found through a skill index and a grid over home locations.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from scheduling.checker import haversine_km
from scheduling.problem import Pair, Problem, Shift, Shortfall, Volunteer

KM_PER_DEGREE_LAT = 111.19
BUCKETS = ("forbidden", "unavailable", "too_far", "busy", "at_limit", "free")


@dataclass(frozen=True, slots=True)
class _Load:
    """What a volunteer already does in the roster."""

    shifts: tuple[Shift, ...]
    days: frozenset[int]
    minutes: int
    week_minutes: dict[date, int]
    kinds: Counter[str]


class _Context:
    def __init__(self, problem: Problem, assignments: Iterable[Pair]) -> None:
        self.problem = problem
        self.tz = problem.tz
        self.shifts = {s.id: s for s in problem.shifts}
        self.volunteers = {v.id: v for v in problem.volunteers}
        self.day_of = {s.id: problem.day_index(s.start) for s in problem.shifts}
        self.assigned: dict[str, set[str]] = defaultdict(set)
        by_volunteer: dict[str, list[Shift]] = defaultdict(list)
        for pair in set(assignments):
            shift = self.shifts.get(pair.shift)
            if shift is not None and pair.volunteer in self.volunteers:
                self.assigned[shift.id].add(pair.volunteer)
                by_volunteer[pair.volunteer].append(shift)
        self.loads = {vid: self._load(shifts) for vid, shifts in by_volunteer.items()}
        self.forbidden = {(p.volunteer, p.shift) for p in problem.forbidden}
        self.successions = set(problem.rules.forbidden_successions)
        self.by_skill: dict[str, list[Volunteer]] = defaultdict(list)
        for volunteer in problem.volunteers:
            for skill in volunteer.skills:
                self.by_skill[skill].append(volunteer)
        self.grid = _Grid(problem.volunteers, problem.rules.max_distance_km)

    def week(self, day: int) -> date:
        moment = self.problem.horizon_start + timedelta(days=day)
        return moment - timedelta(days=moment.weekday())

    def _load(self, shifts: list[Shift]) -> _Load:
        week_minutes: dict[date, int] = defaultdict(int)
        for shift in shifts:
            week_minutes[self.week(self.day_of[shift.id])] += shift.minutes
        return _Load(
            shifts=tuple(shifts),
            days=frozenset(self.day_of[s.id] for s in shifts),
            minutes=sum(s.minutes for s in shifts),
            week_minutes=dict(week_minutes),
            kinds=Counter(s.kind for s in shifts),
        )

    def bucket(self, volunteer: Volunteer, shift: Shift) -> str:
        """The first reason this volunteer cannot be added to the shift, or "free"."""
        if (volunteer.id, shift.id) in self.forbidden:
            return "forbidden"
        if any(w.start < shift.end and shift.start < w.end for w in volunteer.unavailable):
            return "unavailable"
        limit = self.problem.rules.max_distance_km
        if (
            limit is not None
            and volunteer.location is not None
            and shift.location is not None
            and haversine_km(volunteer.location, shift.location) > limit
        ):
            return "too_far"
        if volunteer.limits.max_shifts_by_kind.get(shift.kind) == 0:
            return "at_limit"
        load = self.loads.get(volunteer.id)
        if load is None:
            return "free"
        if self._busy(load, shift):
            return "busy"
        if self._at_limit(volunteer, load, shift):
            return "at_limit"
        return "free"

    def _busy(self, load: _Load, shift: Shift) -> bool:
        rules = self.problem.rules
        rest = timedelta(minutes=rules.min_rest_minutes)
        day = self.day_of[shift.id]
        for other in load.shifts:
            if other.start < shift.end + rest and shift.start < other.end + rest:
                return True
            other_day = self.day_of[other.id]
            if rules.one_shift_per_day and other_day == day:
                return True
            if other_day == day - 1 and (other.kind, shift.kind) in self.successions:
                return True
            if other_day == day + 1 and (shift.kind, other.kind) in self.successions:
                return True
        return False

    def _at_limit(self, volunteer: Volunteer, load: _Load, shift: Shift) -> bool:
        limits = volunteer.limits
        day = self.day_of[shift.id]
        if limits.max_shifts is not None and len(load.shifts) + 1 > limits.max_shifts:
            return True
        if limits.max_minutes is not None and load.minutes + shift.minutes > limits.max_minutes:
            return True
        if limits.max_minutes_per_week is not None:
            week = load.week_minutes.get(self.week(day), 0)
            if week + shift.minutes > limits.max_minutes_per_week:
                return True
        kind_cap = limits.max_shifts_by_kind.get(shift.kind)
        if kind_cap is not None and load.kinds[shift.kind] + 1 > kind_cap:
            return True
        if limits.max_consecutive_days is not None and day not in load.days:
            run = 1
            before = day - 1
            while before in load.days:
                run, before = run + 1, before - 1
            after = day + 1
            while after in load.days:
                run, after = run + 1, after + 1
            if run > limits.max_consecutive_days:
                return True
        return False

    def label(self, shift: Shift) -> str:
        local = shift.start.astimezone(self.tz)
        return f"{shift.id} ({shift.kind}, {local:%a %m-%d %H:%M})"


class _Grid:
    """Volunteers bucketed by home location in cells about `radius_km` wide."""

    def __init__(self, volunteers: Sequence[Volunteer], radius_km: float | None) -> None:
        self.radius_km = radius_km
        self.unplaced: list[Volunteer] = []
        self.cells: dict[tuple[int, int], list[Volunteer]] = defaultdict(list)
        self.cell_deg = max((radius_km or 0.0) / KM_PER_DEGREE_LAT, 1e-3)
        for volunteer in volunteers:
            if volunteer.location is None or radius_km is None:
                self.unplaced.append(volunteer)
            else:
                self.cells[self._cell(volunteer.location.lat, volunteer.location.lon)].append(
                    volunteer
                )

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell_deg), math.floor(lon / self.cell_deg)

    def near(self, shift: Shift) -> list[Volunteer]:
        """A superset of the volunteers within reach of the shift (all when unlimited)."""
        if self.radius_km is None or shift.location is None:
            return self.unplaced + [v for cell in self.cells.values() for v in cell]
        lat, lon = shift.location.lat, shift.location.lon
        cos_lat = max(math.cos(math.radians(min(89.0, abs(lat) + self.cell_deg))), 0.01)
        lat_cells = 1
        lon_cells = math.ceil(1 / cos_lat)
        row, col = self._cell(lat, lon)
        found = list(self.unplaced)
        for d_row in range(-lat_cells, lat_cells + 1):
            for d_col in range(-lon_cells, lon_cells + 1):
                found.extend(self.cells.get((row + d_row, col + d_col), ()))
        return found


def _describe(counts: Counter[str], radius: float | None) -> list[str]:
    phrases = {
        "unavailable": "{} on leave or unavailable",
        "forbidden": "{} declined or blocked",
        "busy": "{} already on an overlapping or too-close shift",
        "at_limit": "{} at a shift or hour limit",
        "too_far": "{} farther than " + (f"{radius:g} km" if radius is not None else "reach"),
    }
    return [phrases[name].format(counts[name]) for name in phrases if counts[name]]


def _people(count: int) -> str:
    return f"{count} volunteer" + ("" if count == 1 else "s")


def _reason(
    context: _Context,
    shift: Shift,
    missing: int,
    missing_skills: dict[str, int],
) -> str:
    problem = context.problem
    radius = problem.rules.max_distance_km
    assigned = context.assigned.get(shift.id, set())
    reachable = context.grid.near(shift)
    near = [v for v in reachable if v.id not in assigned]
    near_ids = {v.id for v in near}
    sentences = []
    if missing:
        counts = Counter(context.bucket(v, shift) for v in near)
        # People outside the grid's neighbourhood are too far without measuring.
        outside = len(problem.volunteers) - len(reachable)
        counts["too_far"] += outside - len(assigned - {v.id for v in reachable})
        head = f"{missing} of {shift.required} places unfilled on {context.label(shift)}"
        details = _describe(counts, radius)
        free = counts["free"]
        tail = f"{_people(free)} could still be added" if free else "nobody else can take it"
        sentences.append(f"{head}; {tail}" + (f" ({', '.join(details)})" if details else ""))
    for skill, short in sorted(missing_skills.items()):
        holders = [v for v in context.by_skill.get(skill, []) if v.id not in assigned]
        counts = Counter(
            context.bucket(v, shift) if v.id in near_ids else "too_far" for v in holders
        )
        free = counts["free"]
        within = f" within {radius:g} km" if radius is not None else ""
        head = (
            f"{short} {skill} missing on {context.label(shift)}: "
            f"only {_people(free)} with {skill} available{within}"
        )
        details = _describe(counts, radius)
        sentences.append(head + (f"; {'; '.join(details)}" if details else ""))
    return ". ".join(sentences)


def explain_shortfalls(problem: Problem, assignments: Iterable[Pair]) -> tuple[Shortfall, ...]:
    """One Shortfall per shift missing head count or skills, with a reason to act on."""
    context = _Context(problem, assignments)
    shortfalls = []
    for shift in problem.shifts:
        assigned = context.assigned.get(shift.id, set())
        missing = max(0, shift.required - len(assigned))
        missing_skills = {}
        for skill, need in shift.skills.items():
            having = sum(1 for vid in assigned if skill in context.volunteers[vid].skills)
            if need > having:
                missing_skills[skill] = need - having
        if missing or missing_skills:
            shortfalls.append(
                Shortfall(
                    shift=shift.id,
                    missing=missing,
                    skills=missing_skills,
                    reason=_reason(context, shift, missing, missing_skills),
                )
            )
    return tuple(shortfalls)
