"""A fast, rule-respecting baseline roster, and the warm start for CP-SAT.

Shifts are filled hardest first (fewest eligible volunteers per wanted person), skill slots
before plain head count, each time by the volunteer whose taking the shift costs least (distance,
requests, minutes above target) and who is least loaded. Every hard rule is checked through
`Roster.can_take`; the minimum rules (minutes, stretch lengths) are repaired afterwards where
possible, and a roster that still breaks one is returned flagged rather than passed off as valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scheduling.eligibility import eligible_positions
from scheduling.model.data import ProblemIndex, haversine_term, km_of_term
from scheduling.model.roster import Roster
from scheduling.problem import Pair, Problem


@dataclass(frozen=True, slots=True)
class GreedyResult:
    assignments: tuple[Pair, ...]
    valid: bool
    issues: tuple[str, ...] = ()


class _Greedy:
    def __init__(self, problem: Problem, eligible: Sequence[Sequence[int]] | None) -> None:
        self.problem = problem
        self.index = ProblemIndex.build(problem)
        self.eligible = [list(e) for e in (eligible or eligible_positions(problem))]
        self.roster = Roster(self.index)
        self.request_cost = self._request_costs()
        self.issues: list[str] = []

    def _request_costs(self) -> dict[tuple[int, int], int]:
        """Change in request cost when the pair is assigned: want → negative."""
        costs: dict[tuple[int, int], int] = {}
        for v_pos, volunteer in enumerate(self.problem.volunteers):
            for request in volunteer.requests:
                s_pos = self.index.shift_pos.get(request.shift)
                if s_pos is None:
                    continue
                delta = -request.weight if request.want else request.weight
                costs[(v_pos, s_pos)] = costs.get((v_pos, s_pos), 0) + delta
        return costs

    def _distance_costs(self, shift: int, candidates: list[int]) -> np.ndarray:
        weight = self.problem.weights.distance
        location = self.problem.shifts[shift].location
        if weight == 0 or location is None or not candidates:
            return np.zeros(len(candidates), dtype=np.int64)
        volunteers = self.problem.volunteers
        located = [volunteers[v].location for v in candidates]
        lat = np.radians([loc.lat if loc else location.lat for loc in located])
        lon = np.radians([loc.lon if loc else location.lon for loc in located])
        lat1, lon1 = np.radians(location.lat), np.radians(location.lon)
        km = np.floor(km_of_term(haversine_term(lat1, lon1, lat, lon)))
        return km.astype(np.int64) * weight

    def _order(self, shift: int, skill: str | None) -> list[int]:
        """Candidates for a shift, cheapest and least loaded first."""
        problem = self.problem
        volunteers = problem.volunteers
        candidates = self.eligible[shift]
        if skill is not None:
            candidates = [v for v in candidates if skill in volunteers[v].skills]
        distance = self._distance_costs(shift, candidates)
        minutes = self.index.shifts[shift].minutes
        fairness = problem.weights.fairness
        keyed = []
        for position, v in enumerate(candidates):
            load = self.roster.loads[v]
            volunteer = volunteers[v]
            cost = int(distance[position]) + self.request_cost.get((v, shift), 0)
            target = volunteer.target_minutes
            if target is not None and fairness:
                cost += fairness * (
                    max(0, load.minutes + minutes - target) - max(0, load.minutes - target)
                )
            need = volunteer.limits.min_minutes or 0
            share = load.minutes / target if target else load.minutes / 10_000
            keyed.append((cost, load.minutes >= need, share, v))
        keyed.sort()
        return [item[-1] for item in keyed]

    def pin(self) -> None:
        for pair in self.problem.pinned:
            v = self.index.volunteer_pos[pair.volunteer]
            s = self.index.shift_pos[pair.shift]
            if v in self.roster.staff[s]:
                continue
            if not self.roster.can_take(v, s):
                self.issues.append(f"pinned {pair.volunteer} on {pair.shift} breaks a hard rule")
            self.roster.assign(v, s)

    def fill(self) -> None:
        shifts = self.problem.shifts

        def hardness(s: int) -> tuple[float, int]:
            wanted = max(shifts[s].required, 1)
            return (len(self.eligible[s]) / wanted, s)

        for s in sorted(range(len(shifts)), key=hardness):
            shift = shifts[s]
            for skill, need in sorted(shift.skills.items()):
                have = sum(
                    1 for v in self.roster.staff[s] if skill in self.problem.volunteers[v].skills
                )
                self._take(s, need - have, self._order(s, skill), limit=shift.required)
            self._take(s, shift.required - len(self.roster.staff[s]), self._order(s, None))

    def _take(self, shift: int, count: int, ordered: list[int], limit: int | None = None) -> None:
        for v in ordered:
            if count <= 0 or (limit is not None and len(self.roster.staff[shift]) >= limit):
                return
            if self.roster.can_take(v, shift):
                self.roster.assign(v, shift)
                count -= 1

    def repair_minimums(self) -> None:
        for v, volunteer in enumerate(self.problem.volunteers):
            limits = volunteer.limits
            if limits.min_minutes and self.roster.loads[v].minutes < limits.min_minutes:
                self._top_up_minutes(v, limits.min_minutes)
            if limits.min_consecutive_days:
                self._fix_short_stretches(v, limits.min_consecutive_days)

    def _eligible_for(self, v: int) -> list[int]:
        if not hasattr(self, "_by_volunteer"):
            by_volunteer: list[list[int]] = [[] for _ in self.problem.volunteers]
            for s, candidates in enumerate(self.eligible):
                for candidate in candidates:
                    by_volunteer[candidate].append(s)
            self._by_volunteer = by_volunteer
        return self._by_volunteer[v]

    def _top_up_minutes(self, v: int, need: int) -> None:
        shifts = self.problem.shifts
        # Shifts still short of people first, then those with room above the requirement.
        options = sorted(
            self._eligible_for(v),
            key=lambda s: (len(self.roster.staff[s]) >= shifts[s].required, -shifts[s].minutes),
        )
        for s in options:
            if self.roster.loads[v].minutes >= need:
                return
            if self.roster.can_take(v, s):
                self.roster.assign(v, s)

    def _fix_short_stretches(self, v: int, need: int) -> None:
        """Lengthen each too-short inner work stretch; failing that, drop it if that keeps the
        volunteer's minimum minutes (pinned shifts are never dropped)."""
        for first, _ in self.roster.stretches(v, True):
            for step in (1, -1):
                for _ in range(need):
                    low, high = self._stretch_around(v, first)
                    if high - low + 1 >= need or low == 0 or high == self.index.days - 1:
                        break
                    if not self._work_on(v, high + 1 if step == 1 else low - 1):
                        break
            low, high = self._stretch_around(v, first)
            if high - low + 1 < need and low > 0 and high < self.index.days - 1:
                self._drop_days(v, low, high)

    def _stretch_around(self, v: int, day: int) -> tuple[int, int]:
        load = self.roster.loads[v]
        low = high = day
        while self.index.in_horizon(low - 1) and load.works(low - 1):
            low -= 1
        while self.index.in_horizon(high + 1) and load.works(high + 1):
            high += 1
        return low, high

    def _drop_days(self, v: int, low: int, high: int) -> None:
        load = self.roster.loads[v]
        dropped = [f for f in load.shifts if low <= f.day <= high]
        pinned = {(p.volunteer, p.shift) for p in self.problem.pinned}
        volunteer = self.problem.volunteers[v]
        if any((volunteer.id, f.id) in pinned for f in dropped):
            return
        remaining = load.minutes - sum(f.minutes for f in dropped)
        if remaining < (volunteer.limits.min_minutes or 0):
            return
        for fact in dropped:
            self.roster.unassign(v, fact.index)

    def _eligible_on(self, v: int, day: int) -> list[int]:
        """The volunteer's eligible shifts starting on a day (indexed once: on a year-long
        horizon, scanning every shift of the person for each day was most of the greedy)."""
        if not hasattr(self, "_by_volunteer_day"):
            by_day: dict[tuple[int, int], list[int]] = {}
            for s, candidates in enumerate(self.eligible):
                day_of = self.index.shifts[s].day
                for candidate in candidates:
                    by_day.setdefault((candidate, day_of), []).append(s)
            self._by_volunteer_day = by_day
        return self._by_volunteer_day.get((v, day), [])

    def _work_on(self, v: int, day: int) -> bool:
        if not self.index.in_horizon(day) or self.roster.loads[v].works(day):
            return False
        shifts = self.problem.shifts
        for s in sorted(
            self._eligible_on(v, day),
            key=lambda s: len(self.roster.staff[s]) >= shifts[s].required,
        ):
            if self.roster.can_take(v, s):
                self.roster.assign(v, s)
                return True
        return False

    def result(self) -> GreedyResult:
        issues = list(self.issues)
        for v, volunteer in enumerate(self.problem.volunteers):
            issues.extend(f"{volunteer.id}: {issue}" for issue in self.roster.min_rule_issues(v))
        return GreedyResult(self.roster.pairs(), not issues, tuple(issues))


def greedy_result(
    problem: Problem, eligible: Sequence[Sequence[int]] | None = None
) -> GreedyResult:
    """The greedy roster and whether it satisfies every hard rule (with what it breaks if not).

    :param eligible: per shift position, eligible volunteer positions (computed if omitted).
    """
    builder = _Greedy(problem, eligible)
    builder.pin()
    builder.fill()
    builder.repair_minimums()
    return builder.result()


def greedy(problem: Problem) -> tuple[Pair, ...]:
    """A complete roster built greedily; see `greedy_result` for whether it is valid."""
    return greedy_result(problem).assignments
