"""One class per rule of ROSTER_FORMAT.md; each adds its constraints (and, for soft goals, its
objective terms) to the model through `apply(model, variables)`.

Hard rules that can make a problem infeasible (pinned pairs and the minimum rules) are guarded by
`variables.guard(name)`, which in explain mode turns them into assumptions so CP-SAT can name a
conflicting set.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from ortools.sat.python import cp_model

from scheduling.model.data import conflict_cliques, whole_km
from scheduling.model.variables import Variables


class Rule(Protocol):
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None: ...


class Coverage:
    """Capacity is hard; missing and extra people are soft, and never both positive."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        problem = variables.index.problem
        for s, shift in enumerate(problem.shifts):
            chosen = [variables.assign[(v, s)] for v in variables.people_of[s]]
            capacity = shift.max_people
            if len(chosen) > capacity:
                model.add(sum(chosen) <= capacity)
            reachable = min(len(chosen), capacity)
            short_floor = max(0, shift.required - reachable)
            variables.constants["under"] += short_floor * problem.under_weight(shift)
            under_room = shift.required - short_floor
            over_room = max(0, reachable - shift.required)
            if not chosen:
                continue
            count = sum(chosen)
            under = model.new_int_var(0, under_room, f"under_s{shift.id}")
            over = model.new_int_var(0, over_room, f"over_s{shift.id}")
            model.add(count + under + short_floor - over == shift.required)
            if under_room and over_room:
                short = model.new_bool_var(f"short_s{shift.id}")
                model.add(under == 0).only_enforce_if(~short)
                model.add(over == 0).only_enforce_if(short)
            variables.cost("under", problem.under_weight(shift), under)
            variables.cost("over", problem.over_weight(shift), over)


class Skills:
    """Each skill slot of a shift not covered by an assigned person with that skill costs."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        problem = variables.index.problem
        weight = problem.weights.skill_under
        for s, shift in enumerate(problem.shifts):
            for skill, need in sorted(shift.skills.items()):
                if need <= 0:
                    continue
                skilled = [
                    variables.assign[(v, s)]
                    for v in variables.people_of[s]
                    if skill in problem.volunteers[v].skills
                ]
                floor = max(0, need - min(len(skilled), shift.max_people))
                variables.constants["skill_under"] += floor * weight
                if not skilled or floor == need:
                    continue
                short = model.new_int_var(0, need - floor, f"skill_short_s{shift.id}_{skill}")
                model.add(sum(skilled) + short + floor >= need)
                variables.cost("skill_under", weight, short)


class OverlapAndRest:
    """At most one shift of every group of mutually overlapping-or-too-close shifts."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        rest = index.problem.rules.min_rest_minutes
        for v, shifts in enumerate(variables.shifts_of):
            facts = [index.shifts[s] for s in shifts]
            for clique in conflict_cliques(facts, rest):
                model.add_at_most_one(variables.assign[(v, s)] for s in clique)


class OneShiftPerDay:
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        if not variables.index.problem.rules.one_shift_per_day:
            return
        for v in range(len(variables.shifts_of)):
            for shifts in variables.day_shifts(v).values():
                if len(shifts) > 1:
                    model.add_at_most_one(variables.assign[(v, s)] for s in shifts)


class ForbiddenSuccessions:
    """A kind_a shift on day d and a kind_b shift on day d+1 never go to the same person."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        successions = variables.index.problem.rules.forbidden_successions
        if not successions:
            return
        facts = variables.index.shifts
        not_after: dict[str, list[str]] = defaultdict(list)
        for kind_a, kind_b in successions:
            not_after[kind_a].append(kind_b)
        for v in range(len(variables.shifts_of)):
            by_day_kind: dict[tuple[int, str], list[int]] = defaultdict(list)
            for s in variables.shifts_of[v]:
                by_day_kind[(facts[s].day, facts[s].kind)].append(s)
            for (day, kind), firsts in by_day_kind.items():
                for kind_b in not_after.get(kind, ()):
                    for second in by_day_kind.get((day + 1, kind_b), []):
                        for first in firsts:
                            model.add_bool_or(
                                [~variables.assign[(v, first)], ~variables.assign[(v, second)]]
                            )


class Totals:
    """Minutes over the horizon (max and min), per calendar week, shift count and kind caps."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        for v, volunteer in enumerate(index.problem.volunteers):
            limits = volunteer.limits
            shifts = variables.shifts_of[v]
            facts = [index.shifts[s] for s in shifts]
            chosen = [variables.assign[(v, s)] for s in shifts]
            minutes = cp_model.LinearExpr.weighted_sum(chosen, [f.minutes for f in facts])
            available = sum(f.minutes for f in facts)
            if limits.max_minutes is not None and available > limits.max_minutes:
                model.add(minutes <= limits.max_minutes)
            if limits.min_minutes:
                guard = variables.guard(f"min_minutes:{volunteer.id}")
                if available < limits.min_minutes:
                    model.add_bool_or([]).only_enforce_if(guard)
                else:
                    model.add(minutes >= limits.min_minutes).only_enforce_if(guard)
            if limits.max_shifts is not None and len(chosen) > limits.max_shifts:
                model.add(cp_model.LinearExpr.sum(chosen) <= limits.max_shifts)
            for kind, cap in limits.max_shifts_by_kind.items():
                of_kind = [x for f, x in zip(facts, chosen, strict=True) if f.kind == kind]
                if len(of_kind) > cap:
                    model.add(cp_model.LinearExpr.sum(of_kind) <= cap)
            weekly = limits.max_minutes_per_week
            if weekly is not None:
                weeks: dict[int, list[tuple[int, cp_model.IntVar]]] = defaultdict(list)
                for f, x in zip(facts, chosen, strict=True):
                    weeks[f.week].append((f.minutes, x))
                for items in weeks.values():
                    if sum(m for m, _ in items) > weekly:
                        model.add(sum(m * x for m, x in items) <= weekly)


class ConsecutiveDays:
    """Most consecutive working days: every window of max+1 days has a day off."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        for v, volunteer in enumerate(index.problem.volunteers):
            most = volunteer.limits.max_consecutive_days
            if most is None or not variables.shifts_of[v]:
                continue
            # Calendar days, including any a shift starts on beyond the horizon's ends.
            shift_days = [index.shifts[s].day for s in variables.shifts_of[v]]
            low, high = min([0, *shift_days]), max([index.days - 1, *shift_days])
            for first in range(low, high - most + 1):
                window = [variables.works(v, d) for d in range(first, first + most + 1)]
                worked = [w for w in window if w is not None]
                if len(worked) > most:
                    model.add(sum(worked) <= most)


class MinimumStretches:
    """Fewest consecutive working days and days off, for stretches clear of the horizon ends.

    Forbids each too-short pattern directly: off, work x length, off (or the reverse), with a
    clause per start day and length, as in OR-Tools' shift_scheduling_sat example.
    """

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        for v, volunteer in enumerate(variables.index.problem.volunteers):
            limits = volunteer.limits
            if not variables.shifts_of[v]:
                continue
            if limits.min_consecutive_days and limits.min_consecutive_days > 1:
                guard = variables.guard(f"min_consecutive_days:{volunteer.id}")
                self._forbid_short(model, variables, v, limits.min_consecutive_days, True, guard)
            if limits.min_consecutive_days_off and limits.min_consecutive_days_off > 1:
                guard = variables.guard(f"min_consecutive_days_off:{volunteer.id}")
                self._forbid_short(
                    model, variables, v, limits.min_consecutive_days_off, False, guard
                )

    @staticmethod
    def _forbid_short(
        model: cp_model.CpModel,
        variables: Variables,
        v: int,
        least: int,
        working: bool,
        guard: list[cp_model.IntVar],
    ) -> None:
        days = variables.index.days
        works = [variables.works(v, d) for d in range(days)]
        for first in range(1, days - 1):
            for length in range(1, least):
                last = first + length - 1
                if last + 1 > days - 1:
                    break
                clause = _stretch_clause(works, first, last, working)
                if clause is not None:
                    model.add_bool_or(clause).only_enforce_if(guard)


def _stretch_clause(
    works: list[cp_model.IntVar | None], first: int, last: int, working: bool
) -> list[cp_model.LiteralT] | None:
    """The clause that forbids exactly the stretch [first, last] of work (or of rest); None when
    the pattern is impossible anyway, since a day without a variable is always off."""
    clause: list[cp_model.LiteralT] = []
    pattern = [(first - 1, False), *((d, True) for d in range(first, last + 1)), (last + 1, False)]
    for day, inside in pattern:
        literal = works[day]
        must_work = inside == working
        if literal is None:
            if must_work:
                return None  # the pattern needs work on a day that cannot be worked
            continue  # the pattern needs rest there, which always holds: no escape literal
        clause.append(~literal if must_work else literal)
    return clause


class Weekends:
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        weekend_days: dict[int, list[int]] = defaultdict(list)
        # Every day a shift starts on counts, also beyond the horizon's ends.
        shift_days = [f.day for f in index.shifts]
        for day in range(min([0, *shift_days]), max([index.days - 1, *shift_days]) + 1):
            date = index.problem.horizon_start.toordinal() + day
            weekday = (date - 1) % 7  # ordinal 1 (0001-01-01) was a Monday
            if weekday in index.problem.rules.weekend_days:
                monday = date - weekday
                weekend_days[monday].append(day)
        for v, volunteer in enumerate(index.problem.volunteers):
            most = volunteer.limits.max_weekends
            if most is None or not variables.shifts_of[v]:
                continue
            worked = [
                w
                for key, days in weekend_days.items()
                if (w := variables.works_weekend(v, key, days)) is not None
            ]
            if len(worked) > most:
                model.add(sum(worked) <= most)


class Pinned:
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        for pair in index.problem.pinned:
            key = (index.volunteer_pos[pair.volunteer], index.shift_pos[pair.shift])
            literal = variables.assign.get(key)
            guard = variables.guard(f"pinned:{pair.volunteer}:{pair.shift}")
            if literal is None:
                model.add_bool_or([]).only_enforce_if(guard)
            else:
                model.add(literal == 1).only_enforce_if(guard)


class Requests:
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        for v, volunteer in enumerate(index.problem.volunteers):
            for request in volunteer.requests:
                s = index.shift_pos.get(request.shift)
                literal = None if s is None else variables.assign.get((v, s))
                if literal is None:
                    variables.constants["requests"] += request.weight if request.want else 0
                elif request.want:
                    variables.constants["requests"] += request.weight
                    variables.cost("requests", -request.weight, literal)
                else:
                    variables.cost("requests", request.weight, literal)


class Fairness:
    """Minutes above a volunteer's target cost `weights.fairness` each."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        weight = index.problem.weights.fairness
        if not weight:
            return
        for v, volunteer in enumerate(index.problem.volunteers):
            target = volunteer.target_minutes
            shifts = variables.shifts_of[v]
            available = sum(index.shifts[s].minutes for s in shifts)
            if target is None or available <= target:
                continue
            minutes = sum(index.shifts[s].minutes * variables.assign[(v, s)] for s in shifts)
            excess = model.new_int_var(0, available - target, f"excess_v{volunteer.id}")
            model.add(excess >= minutes - target)
            variables.cost("fairness", weight, excess)


class Distance:
    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        problem = variables.index.problem
        weight = problem.weights.distance
        if not weight:
            return
        for (v, s), literal in variables.assign.items():
            variables.cost(
                "distance", weight * whole_km(problem.volunteers[v], problem.shifts[s]), literal
            )


class Change:
    """Each dropped assignment of the previous plan costs `weights.change`."""

    def apply(self, model: cp_model.CpModel, variables: Variables) -> None:
        index = variables.index
        weight = index.problem.weights.change
        if not weight:
            return
        for pair in set(index.problem.previous):
            key = (index.volunteer_pos[pair.volunteer], index.shift_pos[pair.shift])
            variables.constants["change"] += weight
            literal = variables.assign.get(key)
            if literal is not None:
                variables.cost("change", -weight, literal)


ALL_RULES: tuple[Rule, ...] = (
    Coverage(),
    Skills(),
    OverlapAndRest(),
    OneShiftPerDay(),
    ForbiddenSuccessions(),
    Totals(),
    ConsecutiveDays(),
    MinimumStretches(),
    Weekends(),
    Pinned(),
    Requests(),
    Fairness(),
    Distance(),
    Change(),
)
