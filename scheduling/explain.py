"""Why a shift is short: reasons a coordinator can act on.

For each shift missing people or skills, every volunteer who could matter (everyone for a head
count, the holders of the skill for a skill slot) is put in the first bucket that keeps them off
the shift: too far (whatever else applies: leave far away is no lead), forbidden (declined or
blocked), unavailable (leave or away), busy (already on
an overlapping, too-close, same-day or forbidden-succession shift), at a limit (shifts, minutes,
week, kind or consecutive days), or free. "Free" people could be added without breaking a hard
rule considered here; a reason with free people says the shortage is a trade-off (cost or a
stretch rule), one without says more people are needed.

At federation scale (40,000 volunteers, thousands of short shifts) a pass over everyone per
shortfall is far too slow, so the facts are computed once and each shortfall only counts:
- the eligibility index (the solver's, or built here) already holds everyone who is not
  forbidden, unavailable, too far or capped at 0 for the kind; only those few explicit
  exclusions (forbidden pairs, unavailable windows, kind caps of 0) are looked at, and
  everyone else outside the index is too far;
- per-volunteer loads (shifts, minutes, week minutes, kind counts, runs of worked days) are
  numpy arrays, so "at a limit" is a few vector comparisons over a shift's candidates;
- "busy" comes from the roster's assignments sorted by start and grouped by day, found by
  binary search around the shift, not from every candidate's shift list.
When a deadline is given and would be overrun, the largest shortfalls are explained first and
the rest get a short summary reason.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

import numpy as np

from scheduling.eligibility import _VolunteerGrid
from scheduling.model.data import EARTH_RADIUS_KM
from scheduling.problem import Location, Pair, Problem, Shift, Shortfall

BUCKETS = ("forbidden", "unavailable", "too_far", "busy", "at_limit", "free")
# Sentinel for "no limit" in integer limit arrays.
NO_LIMIT = np.iinfo(np.int64).max // 4


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class _Facts:
    """Everything about the problem and roster that does not depend on the short shift."""

    def __init__(
        self,
        problem: Problem,
        assignments: Iterable[Pair],
        eligible: Sequence[Sequence[int] | np.ndarray],
        reachable: Mapping[Location | None, np.ndarray] | None,
    ) -> None:
        self.problem = problem
        self.tz = problem.tz
        self.eligible = eligible
        self.reachable = reachable
        volunteers = problem.volunteers
        n = len(volunteers)
        self.n = n
        self.position = {v.id: p for p, v in enumerate(volunteers)}
        self.shift_pos = {s.id: p for p, s in enumerate(problem.shifts)}
        self.day = [problem.day_index(s.start) for s in problem.shifts]
        self.start = [_seconds(s.start) for s in problem.shifts]
        self.end = [_seconds(s.end) for s in problem.shifts]
        self.assigned: dict[int, list[int]] = defaultdict(list)
        for pair in set(assignments):
            s = self.shift_pos.get(pair.shift)
            v = self.position.get(pair.volunteer)
            if s is not None and v is not None:
                self.assigned[s].append(v)
        self._loads()
        self._limits()
        self._exclusions()
        self.skill_mask: dict[str, np.ndarray] = {}
        self.scratch = np.zeros(n, dtype=bool)

    def week(self, day: int) -> date:
        moment = self.problem.horizon_start + timedelta(days=day)
        return moment - timedelta(days=moment.weekday())

    def _loads(self) -> None:
        problem, n = self.problem, self.n
        shifts = problem.shifts
        kinds = sorted({s.kind for s in shifts})
        self.kind_code = {k: i for i, k in enumerate(kinds)}
        days = sorted(set(self.day)) or [0]
        self.day_lo = min(days) - 1
        span = max(days) - self.day_lo + 2
        weeks = sorted({self.week(d) for d in days})
        self.week_code = {w: i for i, w in enumerate(weeks)}
        self.count = np.zeros(n, dtype=np.int64)
        self.minutes = np.zeros(n, dtype=np.int64)
        self.week_minutes = np.zeros((len(weeks), n), dtype=np.int64)
        self.kind_count = np.zeros((len(kinds), n), dtype=np.int64)
        worked = np.zeros((span, n), dtype=bool)
        # Assignments as (start, end, volunteer, kind) sorted by start, and per day.
        rows = []
        for s, people in self.assigned.items():
            shift = shifts[s]
            k, d = self.kind_code[shift.kind], self.day[s]
            for v in people:
                rows.append((self.start[s], self.end[s], v, k, d))
                self.count[v] += 1
                self.minutes[v] += shift.minutes
                self.week_minutes[self.week_code[self.week(d)], v] += shift.minutes
                self.kind_count[k, v] += 1
                worked[d - self.day_lo, v] = True
        rows.sort()
        self.busy_start = [r[0] for r in rows]
        self.longest = max((r[1] - r[0] for r in rows), default=0)
        self.busy_rows = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
        by_day: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for r in rows:
            by_day[r[4]].append((r[2], r[3]))
        self.on_day = {
            d: np.array(found, dtype=np.int64).reshape(-1, 2) for d, found in by_day.items()
        }
        self.worked = worked
        # Runs of worked days ending at (left) and starting at (right) each day.
        left = np.zeros((span, n), dtype=np.int32)
        right = np.zeros((span, n), dtype=np.int32)
        for i in range(span):
            left[i] = np.where(worked[i], (left[i - 1] if i else 0) + 1, 0)
        for i in range(span - 1, -1, -1):
            right[i] = np.where(worked[i], (right[i + 1] if i + 1 < span else 0) + 1, 0)
        self.left_run, self.right_run = left, right

    def _limits(self) -> None:
        volunteers, n = self.problem.volunteers, self.n

        def array(name: str) -> np.ndarray:
            values = [getattr(v.limits, name) for v in volunteers]
            return np.array([NO_LIMIT if x is None else x for x in values], dtype=np.int64)

        self.max_shifts = array("max_shifts")
        self.max_minutes = array("max_minutes")
        self.max_week = array("max_minutes_per_week")
        self.max_run = array("max_consecutive_days")
        self.kind_cap = np.full((len(self.kind_code), n), NO_LIMIT, dtype=np.int64)
        for p, volunteer in enumerate(volunteers):
            for kind, cap in volunteer.limits.max_shifts_by_kind.items():
                if kind in self.kind_code:
                    self.kind_cap[self.kind_code[kind], p] = cap

    def _exclusions(self) -> None:
        problem = self.problem
        self.forbidden: dict[int, set[int]] = defaultdict(set)
        for pair in problem.forbidden:
            s, v = self.shift_pos.get(pair.shift), self.position.get(pair.volunteer)
            if s is not None and v is not None:
                self.forbidden[s].add(v)
        windows = [
            (v, _seconds(w.start), _seconds(w.end))
            for v, volunteer in enumerate(problem.volunteers)
            for w in volunteer.unavailable
        ]
        table = np.array(windows, dtype=np.int64).reshape(-1, 3)
        self.window_owner = table[:, 0]
        self.window_start, self.window_end = table[:, 1], table[:, 2]
        self.capped_zero = {k: self.kind_cap[k] == 0 for k in range(len(self.kind_code))}
        self.unavailable_cache: dict[tuple[int, int], np.ndarray] = {}
        located = [v.location for v in problem.volunteers]
        self.lat = np.radians([loc.lat if loc else math.nan for loc in located])
        self.lon = np.radians([loc.lon if loc else math.nan for loc in located])
        self.unlocated = np.array([loc is None for loc in located], dtype=bool)
        self.grid: _VolunteerGrid | None = None
        self.reach_cache: dict[Location | None, np.ndarray] = dict(self.reachable or {})

    def holders(self, skill: str) -> np.ndarray:
        mask = self.skill_mask.get(skill)
        if mask is None:
            mask = np.array([skill in v.skills for v in self.problem.volunteers], dtype=bool)
            self.skill_mask[skill] = mask
        return mask

    def busy_with(self, s: int) -> np.ndarray:
        """Volunteers already on a shift that overlaps, is too close to, falls on the same day
        as (when one shift a day) or forms a forbidden succession with shift `s`."""
        rules = self.problem.rules
        rest = rules.min_rest_minutes * 60
        start, end = self.start[s], self.end[s]
        lo = bisect_left(self.busy_start, start - rest - self.longest)
        hi = bisect_right(self.busy_start, end + rest - 1)
        rows = self.busy_rows[lo:hi]
        near = rows[(rows[:, 0] < end + rest) & (start < rows[:, 1] + rest), 2]
        found = [near]
        day = self.day[s]
        if rules.one_shift_per_day and day in self.on_day:
            found.append(self.on_day[day][:, 0])
        successions = rules.forbidden_successions
        if successions:
            kind = self.problem.shifts[s].kind
            code = self.kind_code
            before = [code[a] for a, b in successions if b == kind and a in code]
            after = [code[b] for a, b in successions if a == kind and b in code]
            for other_day, kinds in ((day - 1, before), (day + 1, after)):
                if kinds and other_day in self.on_day:
                    table = self.on_day[other_day]
                    found.append(table[np.isin(table[:, 1], kinds), 0])
        return np.concatenate(found)

    def unavailable_for(self, s: int) -> np.ndarray:
        """Mask of volunteers with a window overlapping shift `s` (many posts share a slot)."""
        key = (self.start[s], self.end[s])
        mask = self.unavailable_cache.get(key)
        if mask is None:
            hit = (self.window_start < key[1]) & (key[0] < self.window_end)
            mask = np.zeros(self.n, dtype=bool)
            mask[self.window_owner[hit]] = True
            self.unavailable_cache[key] = mask
        return mask

    def reach(self, shift: Shift) -> np.ndarray | None:
        """Mask of volunteers within the distance limit of the shift; None when all are."""
        radius = self.problem.rules.max_distance_km
        if radius is None or shift.location is None:
            return None
        within = self.reach_cache.get(shift.location)
        if within is None:
            if self.grid is None:
                located = [
                    (p, v.location)
                    for p, v in enumerate(self.problem.volunteers)
                    if v.location is not None
                ]
                self.grid = _VolunteerGrid(located, radius)
            within = self.grid.within(shift.location) if len(self.grid.positions) else None
            within = np.zeros(0, dtype=np.int64) if within is None else within
            self.reach_cache[shift.location] = within
        mask = self.unlocated.copy()
        mask[within] = True
        return mask

    def eligible_array(self, s: int) -> np.ndarray:
        return np.asarray(self.eligible[s], dtype=np.int64)

    def within_reach(self, people: np.ndarray, shift: Shift) -> np.ndarray:
        """Which of `people` live within the distance limit of the shift (or have no limit)."""
        limit = self.problem.rules.max_distance_km
        if limit is None or shift.location is None:
            return np.ones(len(people), dtype=bool)
        lat, lon = self.lat[people], self.lon[people]
        lat0, lon0 = math.radians(shift.location.lat), math.radians(shift.location.lon)
        a = (
            np.sin((lat - lat0) / 2) ** 2
            + np.cos(lat) * math.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
        )
        km = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))
        # Volunteers without a home location are never too far.
        return np.isnan(km) | (km <= limit)

    def label(self, shift: Shift) -> str:
        local = shift.start.astimezone(self.tz)
        return f"{shift.id} ({shift.kind}, {local:%a %m-%d %H:%M})"


class _ShiftBuckets:
    """Every volunteer not on shift `s`, sorted into the first bucket that keeps them off it.

    The explicit exclusions are boolean masks over all volunteers; the candidates (the
    eligibility index minus those already on the shift) carry busy / at-limit / free flags.
    """

    def __init__(self, facts: _Facts, s: int) -> None:
        shift = facts.problem.shifts[s]
        n = facts.n
        assigned = np.array(facts.assigned.get(s, ()), dtype=np.int64)
        self.assigned = np.zeros(n, dtype=bool)
        self.assigned[assigned] = True
        off = ~self.assigned
        reach = facts.reach(shift)
        if reach is not None:
            # Whoever lives too far is counted as too far, whatever else keeps them away.
            off &= reach
        self.forbidden = np.zeros(n, dtype=bool)
        self.forbidden[np.array(sorted(facts.forbidden.get(s, ())), dtype=np.int64)] = True
        self.forbidden &= off
        off &= ~self.forbidden
        self.unavailable = facts.unavailable_for(s) & off
        off &= ~self.unavailable
        k = facts.kind_code[shift.kind]
        self.capped = facts.capped_zero[k] & off
        capped = np.flatnonzero(self.capped)
        if len(capped):
            self.capped[capped[~facts.within_reach(capped, shift)]] = False
        eligible = facts.eligible_array(s)
        c = eligible[~self.assigned[eligible]]
        self.candidates = c
        # Among the candidates: busy first, then at a limit, else free.
        scratch = facts.scratch
        busy_people = facts.busy_with(s)
        scratch[busy_people] = True
        busy = scratch[c]
        scratch[busy_people] = False
        d = facts.day[s] - facts.day_lo
        week = facts.week_code[facts.week(facts.day[s])]
        at_limit = (
            (facts.count[c] + 1 > facts.max_shifts[c])
            | (facts.minutes[c] + shift.minutes > facts.max_minutes[c])
            | (facts.week_minutes[week, c] + shift.minutes > facts.max_week[c])
            | (facts.kind_count[k, c] + 1 > facts.kind_cap[k, c])
            | (
                ~facts.worked[d, c]
                & (facts.left_run[d - 1, c] + facts.right_run[d + 1, c] + 1 > facts.max_run[c])
            )
        )
        self.busy = busy
        self.at_limit = at_limit & ~busy
        self.free = ~busy & ~at_limit

    def counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """Bucket sizes over everyone not assigned, or only over the volunteers in `mask`;
        whoever is outside the eligibility index and not explicitly excluded is too far."""
        if mask is None:
            inside = np.ones(len(self.candidates), dtype=bool)
            population = int((~self.assigned).sum())
            counts = {
                "forbidden": int(self.forbidden.sum()),
                "unavailable": int(self.unavailable.sum()),
                "capped": int(self.capped.sum()),
            }
        else:
            inside = mask[self.candidates]
            population = int((mask & ~self.assigned).sum())
            counts = {
                "forbidden": int((self.forbidden & mask).sum()),
                "unavailable": int((self.unavailable & mask).sum()),
                "capped": int((self.capped & mask).sum()),
            }
        counts["busy"] = int((self.busy & inside).sum())
        counts["at_limit"] = int((self.at_limit & inside).sum()) + counts.pop("capped")
        counts["free"] = int((self.free & inside).sum())
        counts["too_far"] = population - sum(counts.values())
        return counts


def _describe(counts: dict[str, int], radius: float | None) -> list[str]:
    phrases = {
        "unavailable": "{} on leave or unavailable",
        "forbidden": "{} declined or blocked",
        "busy": "{} already on an overlapping or too-close shift",
        "at_limit": "{} at a shift or hour limit",
        "too_far": "{} farther than " + (f"{radius:g} km" if radius is not None else "reach"),
    }
    return [phrases[name].format(counts[name]) for name in phrases if counts.get(name)]


def _people(count: int) -> str:
    return f"{count} volunteer" + ("" if count == 1 else "s")


def _reason(facts: _Facts, s: int, missing: int, missing_skills: dict[str, int]) -> str:
    problem = facts.problem
    shift = problem.shifts[s]
    radius = problem.rules.max_distance_km
    buckets = _ShiftBuckets(facts, s)
    sentences = []
    if missing:
        counts = buckets.counts()
        head = f"{missing} of {shift.required} places unfilled on {facts.label(shift)}"
        details = _describe(counts, radius)
        free = counts["free"]
        tail = f"{_people(free)} could still be added" if free else "nobody else can take it"
        sentences.append(f"{head}; {tail}" + (f" ({', '.join(details)})" if details else ""))
    for skill, short in sorted(missing_skills.items()):
        counts = buckets.counts(facts.holders(skill))
        free = counts["free"]
        within = f" within {radius:g} km" if radius is not None else ""
        head = (
            f"{short} {skill} missing on {facts.label(shift)}: "
            f"only {_people(free)} with {skill} available{within}"
        )
        details = _describe(counts, radius)
        sentences.append(head + (f"; {'; '.join(details)}" if details else ""))
    return ". ".join(sentences)


def _summary(facts: _Facts, s: int, missing: int, missing_skills: dict[str, int]) -> str:
    shift = facts.problem.shifts[s]
    parts = []
    if missing:
        parts.append(f"{missing} of {shift.required} places unfilled on {facts.label(shift)}")
    for skill, short in sorted(missing_skills.items()):
        parts.append(f"{short} {skill} missing on {facts.label(shift)}")
    eligible = len(facts.eligible[s])
    return (
        ". ".join(parts)
        + f"; {_people(eligible)} may take it at all (not analysed further within the time limit)"
    )


def explain_shortfalls(
    problem: Problem,
    assignments: Iterable[Pair],
    eligible: Sequence[Sequence[int] | np.ndarray] | None = None,
    deadline: float | None = None,
    reachable: Mapping[Location | None, np.ndarray] | None = None,
) -> tuple[Shortfall, ...]:
    """One Shortfall per shift missing head count or skills, with a reason to act on.

    :param eligible: for each shift (by position) the positions of the volunteers who may take
        it, as `eligibility.eligible_positions` gives (the full index, not a pruned one); built
        here when not given.
    :param deadline: a `time.monotonic()` moment; shortfalls not explained by then (the largest
        are explained first) get a short summary reason instead.
    :param reachable: `eligibility.reachable_positions(problem)` when the caller has it.
    """
    if eligible is None:
        from scheduling.eligibility import eligible_positions

        eligible = eligible_positions(problem)
    facts = _Facts(problem, assignments, eligible, reachable)
    found: list[tuple[int, int, dict[str, int]]] = []
    for s, shift in enumerate(problem.shifts):
        assigned = facts.assigned.get(s, [])
        missing = max(0, shift.required - len(assigned))
        missing_skills = {}
        for skill, need in shift.skills.items():
            having = sum(1 for v in assigned if skill in problem.volunteers[v].skills)
            if need > having:
                missing_skills[skill] = need - having
        if missing or missing_skills:
            found.append((s, missing, missing_skills))
    reasons: dict[int, str] = {}
    largest_first = sorted(found, key=lambda f: (-(f[1] + sum(f[2].values())), f[0]))
    for s, missing, missing_skills in largest_first:
        if deadline is not None and time.monotonic() > deadline:
            reasons[s] = _summary(facts, s, missing, missing_skills)
        else:
            reasons[s] = _reason(facts, s, missing, missing_skills)
    return tuple(
        Shortfall(
            shift=problem.shifts[s].id,
            missing=missing,
            skills=missing_skills,
            reason=reasons[s],
        )
        for s, missing, missing_skills in found
    )
