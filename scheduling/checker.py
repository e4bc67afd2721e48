"""An independent check of a roster against every hard rule of ROSTER_FORMAT.md.

This module deliberately shares no constraint code with the solver model: it re-reads the
format's definitions and scores a plain list of assignments, so a bug in the model shows up as
a disagreement here instead of being repeated. It also recomputes the objective and its parts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from scheduling.problem import OBJECTIVE_PARTS, Location, Pair, Problem, Shift, Volunteer

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    volunteer: str | None
    shifts: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    violations: tuple[Violation, ...]
    objective: int
    parts: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.violations


def haversine_km(a: Location, b: Location) -> float:
    """Great-circle distance in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def distance_km(volunteer: Volunteer, shift: Shift) -> float | None:
    """Distance from a volunteer's home to a shift's post; None when either has no location."""
    if volunteer.location is None or shift.location is None:
        return None
    return haversine_km(volunteer.location, shift.location)


class _Roster:
    """The assignment list cleaned of unknown ids and duplicates, indexed both ways."""

    def __init__(self, problem: Problem, assignments: Iterable[Pair]) -> None:
        self.problem = problem
        self.volunteers = {v.id: v for v in problem.volunteers}
        self.shifts = {s.id: s for s in problem.shifts}
        self.violations: list[Violation] = []
        self.pairs: set[Pair] = set()
        self.by_volunteer: dict[str, list[Shift]] = defaultdict(list)
        self.by_shift: dict[str, list[Volunteer]] = defaultdict(list)
        self._days: dict[str, int] = {}
        for pair in assignments:
            self._add(pair)
        for shifts in self.by_volunteer.values():
            shifts.sort(key=lambda s: (s.start, s.end, s.id))

    def _add(self, pair: Pair) -> None:
        volunteer = self.volunteers.get(pair.volunteer)
        shift = self.shifts.get(pair.shift)
        if volunteer is None:
            self.flag("unknown_volunteer", pair.volunteer, (pair.shift,), "no such volunteer")
        if shift is None:
            self.flag("unknown_shift", pair.volunteer, (pair.shift,), "no such shift")
        if volunteer is None or shift is None:
            return
        if pair in self.pairs:
            self.flag("duplicate", pair.volunteer, (pair.shift,), "assigned twice to one shift")
            return
        self.pairs.add(pair)
        self.by_volunteer[volunteer.id].append(shift)
        self.by_shift[shift.id].append(volunteer)

    def flag(self, rule: str, volunteer: str | None, shifts: tuple[str, ...], message: str) -> None:
        self.violations.append(Violation(rule, volunteer, shifts, message))

    def day(self, shift: Shift) -> int:
        """Horizon day a shift starts on (cached: time zone conversion is the hot spot)."""
        found = self._days.get(shift.id)
        if found is None:
            found = self._days[shift.id] = self.problem.day_index(shift.start)
        return found

    def date_of(self, day: int) -> date:
        return self.problem.horizon_start + timedelta(days=day)


def _check_shift_rules(roster: _Roster) -> None:
    problem = roster.problem
    for shift in problem.shifts:
        people = roster.by_shift.get(shift.id, [])
        if len(people) > shift.max_people:
            roster.flag(
                "capacity",
                None,
                (shift.id,),
                f"{len(people)} assigned, at most {shift.max_people} allowed",
            )
    for pair in problem.pinned:
        if pair not in roster.pairs:
            roster.flag("pinned", pair.volunteer, (pair.shift,), "pinned assignment is missing")
    for pair in problem.forbidden:
        if pair in roster.pairs:
            roster.flag("forbidden", pair.volunteer, (pair.shift,), "forbidden assignment is made")


def _check_placement(roster: _Roster, volunteer: Volunteer, shifts: list[Shift]) -> None:
    """Rules about one assignment at a time: distance and unavailability."""
    limit = roster.problem.rules.max_distance_km
    for shift in shifts:
        km = distance_km(volunteer, shift)
        if limit is not None and km is not None and km > limit:
            roster.flag(
                "max_distance",
                volunteer.id,
                (shift.id,),
                f"{km:.1f} km from home, more than {limit:g} km",
            )
        for window in volunteer.unavailable:
            if window.start < shift.end and shift.start < window.end:
                roster.flag(
                    "unavailable",
                    volunteer.id,
                    (shift.id,),
                    f"overlaps unavailable {window.start.isoformat()} to {window.end.isoformat()}",
                )


def _check_timing(roster: _Roster, volunteer: Volunteer, shifts: list[Shift]) -> None:
    """Overlap and rest, by a sweep over shifts sorted by start.

    Every earlier shift whose end is within `min_rest` of this start is kept open; comparing
    against all of them (not only the previous one) catches every conflicting pair.
    """
    rest = timedelta(minutes=roster.problem.rules.min_rest_minutes)
    open_shifts: list[Shift] = []
    for shift in shifts:
        open_shifts = [s for s in open_shifts if s.end > shift.start - rest]
        for earlier in open_shifts:
            if earlier.end > shift.start:
                roster.flag(
                    "overlap", volunteer.id, (earlier.id, shift.id), "shifts overlap in time"
                )
            else:
                gap = int((shift.start - earlier.end).total_seconds() // 60)
                roster.flag(
                    "min_rest",
                    volunteer.id,
                    (earlier.id, shift.id),
                    f"{gap} min rest, at least {roster.problem.rules.min_rest_minutes} needed",
                )
        open_shifts.append(shift)


def _check_days(roster: _Roster, volunteer: Volunteer, shifts: list[Shift]) -> None:
    """One shift a day and forbidden successions, on calendar days in the problem's zone."""
    rules = roster.problem.rules
    by_day: dict[int, list[Shift]] = defaultdict(list)
    for shift in shifts:
        by_day[roster.day(shift)].append(shift)
    if rules.one_shift_per_day:
        for day, day_shifts in sorted(by_day.items()):
            if len(day_shifts) > 1:
                roster.flag(
                    "one_shift_per_day",
                    volunteer.id,
                    tuple(s.id for s in day_shifts),
                    f"{len(day_shifts)} shifts start on {roster.date_of(day).isoformat()}",
                )
    forbidden = set(rules.forbidden_successions)
    if not forbidden:
        return
    for day, day_shifts in sorted(by_day.items()):
        for first in day_shifts:
            for second in by_day.get(day + 1, []):
                if (first.kind, second.kind) in forbidden:
                    roster.flag(
                        "forbidden_succession",
                        volunteer.id,
                        (first.id, second.id),
                        f"{second.kind} on the day after {first.kind} is not allowed",
                    )


def _stretches(days: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive days, as (first, last) inclusive."""
    runs: list[tuple[int, int]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _check_totals(roster: _Roster, volunteer: Volunteer, shifts: list[Shift]) -> None:
    """Limits over the horizon: minutes, shifts, per kind, per calendar week."""
    limits = volunteer.limits
    ids = tuple(s.id for s in shifts)
    minutes = sum(s.minutes for s in shifts)
    if limits.max_minutes is not None and minutes > limits.max_minutes:
        roster.flag(
            "max_minutes", volunteer.id, ids, f"{minutes} min, at most {limits.max_minutes}"
        )
    if limits.min_minutes is not None and minutes < limits.min_minutes:
        roster.flag(
            "min_minutes", volunteer.id, ids, f"{minutes} min, at least {limits.min_minutes}"
        )
    if limits.max_shifts is not None and len(shifts) > limits.max_shifts:
        roster.flag(
            "max_shifts", volunteer.id, ids, f"{len(shifts)} shifts, at most {limits.max_shifts}"
        )
    for kind, cap in sorted(limits.max_shifts_by_kind.items()):
        of_kind = tuple(s.id for s in shifts if s.kind == kind)
        if len(of_kind) > cap:
            roster.flag(
                "max_shifts_by_kind",
                volunteer.id,
                of_kind,
                f"{len(of_kind)} {kind} shifts, at most {cap}",
            )
    if limits.max_minutes_per_week is not None:
        weeks: dict[date, list[Shift]] = defaultdict(list)
        for shift in shifts:
            day = roster.date_of(roster.day(shift))
            weeks[day - timedelta(days=day.weekday())].append(shift)
        for monday, week_shifts in sorted(weeks.items()):
            week_minutes = sum(s.minutes for s in week_shifts)
            if week_minutes > limits.max_minutes_per_week:
                roster.flag(
                    "max_minutes_per_week",
                    volunteer.id,
                    tuple(s.id for s in week_shifts),
                    f"{week_minutes} min in the week of {monday.isoformat()}, "
                    f"at most {limits.max_minutes_per_week}",
                )


def _check_stretches(roster: _Roster, volunteer: Volunteer, shifts: list[Shift]) -> None:
    """Consecutive working days, days off, and weekends."""
    limits = volunteer.limits
    problem = roster.problem
    first_day, last_day = 0, problem.horizon_days - 1
    worked = sorted({roster.day(s) for s in shifts})
    runs = _stretches(worked)
    # Minimum stretches are judged on the horizon's days only: a day beyond either end is
    # outside the plan, so a stretch reaching it touches the horizon's edge and is exempt.
    inner_runs = _stretches(d for d in worked if first_day <= d <= last_day)
    ids = tuple(s.id for s in shifts)
    for start, end in runs:
        length = end - start + 1
        span = f"{roster.date_of(start).isoformat()}..{roster.date_of(end).isoformat()}"
        if limits.max_consecutive_days is not None and length > limits.max_consecutive_days:
            roster.flag(
                "max_consecutive_days",
                volunteer.id,
                ids,
                f"{length} days in a row ({span}), at most {limits.max_consecutive_days}",
            )
    for start, end in inner_runs:
        length = end - start + 1
        span = f"{roster.date_of(start).isoformat()}..{roster.date_of(end).isoformat()}"
        touches_edge = start <= first_day or end >= last_day
        if (
            limits.min_consecutive_days is not None
            and length < limits.min_consecutive_days
            and not touches_edge
        ):
            roster.flag(
                "min_consecutive_days",
                volunteer.id,
                ids,
                f"{length} days in a row ({span}), at least {limits.min_consecutive_days}",
            )
    if limits.min_consecutive_days_off is not None:
        # Gaps between two working stretches never touch the horizon's ends.
        for (_, end), (next_start, _) in pairwise(inner_runs):
            off = next_start - end - 1
            if off < limits.min_consecutive_days_off:
                roster.flag(
                    "min_consecutive_days_off",
                    volunteer.id,
                    ids,
                    f"{off} days off after {roster.date_of(end).isoformat()}, "
                    f"at least {limits.min_consecutive_days_off}",
                )
    if limits.max_weekends is not None:
        weekend_days = set(problem.rules.weekend_days)
        weekends = set()
        for day in worked:
            moment = roster.date_of(day)
            if moment.weekday() in weekend_days:
                weekends.add(moment - timedelta(days=moment.weekday()))
        if len(weekends) > limits.max_weekends:
            roster.flag(
                "max_weekends",
                volunteer.id,
                ids,
                f"{len(weekends)} weekends worked, at most {limits.max_weekends}",
            )


def _objective_parts(roster: _Roster) -> dict[str, int]:
    problem = roster.problem
    weights = problem.weights
    parts = dict.fromkeys(OBJECTIVE_PARTS, 0)
    for shift in problem.shifts:
        people = roster.by_shift.get(shift.id, [])
        parts["under"] += max(0, shift.required - len(people)) * problem.under_weight(shift)
        parts["over"] += max(0, len(people) - shift.required) * problem.over_weight(shift)
        for skill, need in shift.skills.items():
            having = sum(1 for v in people if skill in v.skills)
            parts["skill_under"] += max(0, need - having) * weights.skill_under
    for volunteer in problem.volunteers:
        shifts = roster.by_volunteer.get(volunteer.id, [])
        for request in volunteer.requests:
            if request.want != (Pair(volunteer.id, request.shift) in roster.pairs):
                parts["requests"] += request.weight
        if volunteer.target_minutes is not None:
            minutes = sum(s.minutes for s in shifts)
            parts["fairness"] += max(0, minutes - volunteer.target_minutes) * weights.fairness
        if weights.distance:
            for shift in shifts:
                km = distance_km(volunteer, shift)
                if km is not None:
                    parts["distance"] += math.floor(km) * weights.distance
    parts["change"] = sum(weights.change for p in set(problem.previous) if p not in roster.pairs)
    return parts


def check(problem: Problem, assignments: Iterable[Pair]) -> CheckReport:
    """Every hard-rule violation of `assignments`, and the objective they score.

    Unknown ids and repeated pairs are reported and then left out of every other rule and of
    the objective.
    """
    roster = _Roster(problem, assignments)
    _check_shift_rules(roster)
    for volunteer in problem.volunteers:
        shifts = roster.by_volunteer.get(volunteer.id, [])
        _check_placement(roster, volunteer, shifts)
        _check_timing(roster, volunteer, shifts)
        _check_days(roster, volunteer, shifts)
        _check_totals(roster, volunteer, shifts)
        _check_stretches(roster, volunteer, shifts)
    parts = _objective_parts(roster)
    return CheckReport(tuple(roster.violations), sum(parts.values()), parts)
