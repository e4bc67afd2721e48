"""An incremental roster that knows every hard rule: the greedy builds with it, the LNS and the
solver use it to tell whether a roster may be handed to CP-SAT as a complete hint.

`can_take` answers "may this volunteer also take this shift?" for every rule that adding a
shift can break for good (caps, overlap, rest, one per day, successions, consecutive days,
weekends, and an off stretch cut too short). Minimum rules that more work can still satisfy
(minimum minutes, minimum consecutive working days) are checked by `min_rule_issues`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from scheduling.model.data import ProblemIndex, ShiftFacts, conflicts
from scheduling.problem import Limits, Pair

_NONE: Counter[str] = Counter()  # read only: the kinds worked on a day without work
_NO_KINDS: frozenset[str] = frozenset()


@dataclass(slots=True)
class VolunteerLoad:
    limits: Limits
    shifts: list[ShiftFacts] = field(default_factory=list)
    minutes: int = 0
    week_minutes: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    day_kinds: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    weekends: Counter[int] = field(default_factory=Counter)
    by_day: dict[int, list[ShiftFacts]] = field(default_factory=lambda: defaultdict(list))

    def add(self, fact: ShiftFacts) -> None:
        self.shifts.append(fact)
        self.by_day[fact.day].append(fact)
        self.minutes += fact.minutes
        self.week_minutes[fact.week] += fact.minutes
        self.kinds[fact.kind] += 1
        self.day_kinds[fact.day][fact.kind] += 1
        if fact.weekend is not None:
            self.weekends[fact.weekend] += 1

    def remove(self, fact: ShiftFacts) -> None:
        self.shifts.remove(fact)
        self.by_day[fact.day].remove(fact)
        if not self.by_day[fact.day]:
            del self.by_day[fact.day]
        self.minutes -= fact.minutes
        self.week_minutes[fact.week] -= fact.minutes
        self.kinds[fact.kind] -= 1
        self.day_kinds[fact.day][fact.kind] -= 1
        if not +self.day_kinds[fact.day]:
            del self.day_kinds[fact.day]
        if fact.weekend is not None:
            self.weekends[fact.weekend] -= 1
            if self.weekends[fact.weekend] == 0:
                del self.weekends[fact.weekend]

    def works(self, day: int) -> bool:
        return day in self.day_kinds


class Roster:
    """Assignments of a problem, with per-volunteer loads and per-shift head counts."""

    def __init__(self, index: ProblemIndex) -> None:
        self.index = index
        problem = index.problem
        self.rules = problem.rules
        self.loads = [VolunteerLoad(v.limits) for v in problem.volunteers]
        self.staff: list[set[int]] = [set() for _ in problem.shifts]
        self.capacity = [s.max_people for s in problem.shifts]
        # Two shifts can only conflict if their start days are at most this far apart (the
        # longest shift plus the rest time, a day of margin for time-zone shifts), so a test
        # looks at the neighbouring days only, not at everything a volunteer already has.
        longest = max((f.end - f.start for f in index.shifts), default=0)
        # Per kind, the kinds that may not follow it the next day, and may not precede it.
        self.not_after: dict[str, set[str]] = defaultdict(set)
        self.not_before: dict[str, set[str]] = defaultdict(set)
        for kind_a, kind_b in self.rules.forbidden_successions:
            self.not_after[kind_a].add(kind_b)
            self.not_before[kind_b].add(kind_a)
        self.reach_days = (longest + self.rules.min_rest_minutes) // (24 * 60) + 2

    def assign(self, volunteer: int, shift: int) -> None:
        self.loads[volunteer].add(self.index.shifts[shift])
        self.staff[shift].add(volunteer)

    def unassign(self, volunteer: int, shift: int) -> None:
        self.loads[volunteer].remove(self.index.shifts[shift])
        self.staff[shift].discard(volunteer)

    def pairs(self) -> tuple[Pair, ...]:
        volunteers, shifts = self.index.problem.volunteers, self.index.problem.shifts
        return tuple(
            Pair(volunteers[v].id, shifts[s].id)
            for s in range(len(shifts))
            for v in sorted(self.staff[s])
        )

    def load_pairs(self, pairs: Iterable[Pair]) -> None:
        for pair in pairs:
            self.assign(self.index.volunteer_pos[pair.volunteer], self.index.shift_pos[pair.shift])

    # ------------------------------------------------------------------ hard-rule tests

    def can_take(self, volunteer: int, shift: int) -> bool:
        if volunteer in self.staff[shift] or len(self.staff[shift]) >= self.capacity[shift]:
            return False
        load = self.loads[volunteer]
        fact = self.index.shifts[shift]
        rest = self.rules.min_rest_minutes
        return (
            self._within_caps(load, fact)
            and not any(
                conflicts(fact, other, rest)
                for day in range(fact.day - self.reach_days, fact.day + self.reach_days + 1)
                for other in load.by_day.get(day, ())
            )
            and self._day_rules_allow(load, fact)
        )

    @staticmethod
    def _within_caps(load: VolunteerLoad, fact: ShiftFacts) -> bool:
        limits = load.limits
        if limits.max_shifts is not None and len(load.shifts) + 1 > limits.max_shifts:
            return False
        if limits.max_minutes is not None and load.minutes + fact.minutes > limits.max_minutes:
            return False
        weekly = limits.max_minutes_per_week
        if weekly is not None and load.week_minutes[fact.week] + fact.minutes > weekly:
            return False
        kind_cap = limits.max_shifts_by_kind.get(fact.kind)
        return kind_cap is None or load.kinds[fact.kind] + 1 <= kind_cap

    def _day_rules_allow(self, load: VolunteerLoad, fact: ShiftFacts) -> bool:
        day = fact.day
        if load.works(day) and self.rules.one_shift_per_day:
            return False
        if self.rules.forbidden_successions:
            after = self.not_after.get(fact.kind, _NO_KINDS)
            if any(n > 0 and k in after for k, n in load.day_kinds.get(day + 1, _NONE).items()):
                return False
            before = self.not_before.get(fact.kind, _NO_KINDS)
            if any(n > 0 and k in before for k, n in load.day_kinds.get(day - 1, _NONE).items()):
                return False
        if load.works(day):
            return True
        limits = load.limits
        weekend = fact.weekend
        if (
            limits.max_weekends is not None
            and weekend is not None
            and weekend not in load.weekends
            and len(load.weekends) + 1 > limits.max_weekends
        ):
            return False
        if limits.max_consecutive_days is not None:
            run = 1 + self._run(load, day, -1) + self._run(load, day, 1)
            if run > limits.max_consecutive_days:
                return False
        if not self.index.in_horizon(day):
            return True
        min_off = limits.min_consecutive_days_off
        if min_off is not None and min_off > 1:
            for step in (-1, 1):
                gap = self._off_gap(load, day, step)
                if gap is not None and 0 < gap < min_off:
                    return False
        return True

    def _run(self, load: VolunteerLoad, day: int, step: int) -> int:
        length = 0
        probe = day + step
        while load.works(probe):  # calendar days: beyond the horizon too
            length += 1
            probe += step
        return length

    def _off_gap(self, load: VolunteerLoad, day: int, step: int) -> int | None:
        """Days off between `day` and the next worked day in `step` direction; None if the off
        stretch runs to the horizon's edge (where minimum stretches do not apply)."""
        probe = day + step
        gap = 0
        while self.index.in_horizon(probe):
            if load.works(probe):
                return gap
            gap += 1
            probe += step
        return None

    # ------------------------------------------------------------------ minimum rules

    def stretches(self, volunteer: int, working: bool) -> list[tuple[int, int]]:
        """Inner (first, last) day stretches of work (or of rest) that touch neither horizon
        edge."""
        load = self.loads[volunteer]
        days = self.index.days
        out: list[tuple[int, int]] = []
        day = 0
        while day < days:
            if load.works(day) != working:
                day += 1
                continue
            first = day
            while day < days and load.works(day) == working:
                day += 1
            if first > 0 and day < days:
                out.append((first, day - 1))
        return out

    def min_rule_issues(self, volunteer: int) -> list[str]:
        load = self.loads[volunteer]
        limits = load.limits
        issues = []
        if limits.min_minutes is not None and load.minutes < limits.min_minutes:
            issues.append(f"min_minutes: {load.minutes} < {limits.min_minutes}")
        if limits.min_consecutive_days is not None:
            for first, last in self.stretches(volunteer, True):
                if last - first + 1 < limits.min_consecutive_days:
                    issues.append(f"min_consecutive_days: days {first}-{last}")
        if limits.min_consecutive_days_off is not None:
            for first, last in self.stretches(volunteer, False):
                if last - first + 1 < limits.min_consecutive_days_off:
                    issues.append(f"min_consecutive_days_off: days {first}-{last}")
        return issues
