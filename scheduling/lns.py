"""Large-neighbourhood search over a built roster model.

Each round frees a neighbourhood — a window of days, a random group of volunteers, or both —
fixes every other assignment to the incumbent, and lets CP-SAT re-solve that with a short time
limit; a better roster replaces the incumbent. This is what finds good rosters on instances
where CP-SAT on the whole model stalls (long horizons, many staff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from scheduling.model.build import RosterModel, build_model
from scheduling.model.data import ProblemIndex
from scheduling.problem import Pair, Problem, Shift, Volunteer


@dataclass(slots=True)
class LnsResult:
    values: dict[int, int]  # variable index → 0/1 of the best roster found
    objective: int
    rounds: int
    improved: int


def fix(model: cp_model.CpModel, var_index: int, value: int) -> None:
    """Fix a Boolean of a (cloned) model to a value by narrowing its domain in place."""
    domain = model.proto.variables[var_index].domain
    domain[0] = value
    domain[1] = value


def _neighbourhood(rm: RosterModel, rng: random.Random, fraction: float) -> set[int]:
    """Variable indices to free this round."""
    variables = rm.variables
    index = variables.index
    days = max(1, index.days)
    volunteers = len(index.problem.volunteers)
    choice = rng.random()
    if choice < 0.4 and days > 1:
        width = max(1, round(days * fraction))
        first = rng.randrange(0, max(1, days - width + 1))
        return {
            literal.index
            for (_, s), literal in variables.assign.items()
            if first <= index.shifts[s].day < first + width
        }
    if choice < 0.8 or days <= 1:
        group = set(rng.sample(range(volunteers), max(1, round(volunteers * fraction))))
        return {literal.index for (v, _), literal in variables.assign.items() if v in group}
    width = max(2, round(days * min(1.0, fraction * 2)))
    first = rng.randrange(0, max(1, days - width + 1))
    group = set(rng.sample(range(volunteers), max(1, round(volunteers * min(1.0, fraction * 2)))))
    return {
        literal.index
        for (v, s), literal in variables.assign.items()
        if v in group or first <= index.shifts[s].day < first + width
    }


def improve(
    rm: RosterModel,
    values: dict[int, int],
    objective: int,
    deadline: float,
    seed: int,
    workers: int,
    on_improve: Callable[[int], None] | None = None,
) -> LnsResult:
    """Improve a feasible roster until the deadline (a `time.monotonic()` instant)."""
    rng = random.Random(seed)
    best_values, best_objective = dict(values), objective
    assign_indices = [literal.index for literal in rm.variables.assign.values()]
    fraction, rounds, improved = 0.15, 0, 0
    while time.monotonic() < deadline - 0.05:
        rounds += 1
        free = _neighbourhood(rm, rng, fraction)
        sub = rm.model.clone()
        sub.clear_hints()
        for var_index in assign_indices:
            value = best_values[var_index]
            if var_index not in free:
                fix(sub, var_index, value)
            sub.add_hint(sub.get_bool_var_from_proto_index(var_index), value)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, min(1.0, deadline - time.monotonic()))
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed + rounds
        status = solver.solve(sub)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            value_now = round(solver.objective_value)
            better = value_now < best_objective
            if better:
                best_objective = value_now
                best_values = {
                    i: int(solver.value(sub.get_bool_var_from_proto_index(i)))
                    for i in assign_indices
                }
                improved += 1
                if on_improve is not None:
                    on_improve(best_objective)
            # A neighbourhood solved to optimality is too easy: widen it; one that timed out
            # without improving is too hard: narrow it.
            if status == cp_model.OPTIMAL:
                fraction = min(0.8, fraction * 1.15)
            elif not better:
                fraction = max(0.03, fraction * 0.85)
        else:
            fraction = max(0.03, fraction * 0.85)
    return LnsResult(best_values, best_objective, rounds, improved)


def _residual_shift(shift: Shift, staff: list[Volunteer], frugal: bool) -> Shift | None:
    """The shift as the next volunteer sees it: what is still wanted and still has room.

    Frugal: nothing is wanted and every person costs 1, so each volunteer takes only what their
    own minimum rules require and leaves room for those who come later.
    """
    room = shift.max_people - len(staff)
    if room <= 0:
        return None
    if frugal:
        return replace(shift, required=0, capacity=room, skills={}, over_weight=1)
    required = max(0, shift.required - len(staff))
    skills = {
        skill: max(0, need - sum(1 for v in staff if skill in v.skills))
        for skill, need in shift.skills.items()
    }
    return replace(
        shift,
        required=required,
        capacity=room,
        skills={k: n for k, n in skills.items() if n},
    )


def sequential_roster(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    deadline: float,
    seed: int = 0,
    workers: int = 2,
    hard_deadline: float | None = None,
    frugal: bool = False,
) -> tuple[Pair, ...] | None:
    """A roster that keeps every hard rule, built one volunteer at a time.

    Every hard rule except capacity concerns one volunteer, and cover is soft, so a volunteer's
    schedule can be chosen alone against what the others left: each step is a tiny CP-SAT model
    (one volunteer, the shifts with room left, requirements reduced by those already staffed).
    Most-constrained volunteers go first. Returns None if a volunteer has no valid schedule (the
    ones before took the room they needed; try `frugal`) or time runs out.
    """
    by_volunteer: list[list[int]] = [[] for _ in problem.volunteers]
    for s, people in enumerate(eligible):
        for v in people:
            by_volunteer[v].append(s)
    minutes = [s.minutes for s in problem.shifts]

    def tightness(v: int) -> tuple[float, int]:
        need = problem.volunteers[v].limits.min_minutes or 0
        reachable = sum(minutes[s] for s in by_volunteer[v]) or 1
        return (-need / reachable, v)

    staff: list[list[Volunteer]] = [[] for _ in problem.shifts]
    pinned = {(p.volunteer, p.shift) for p in problem.pinned}
    chosen: list[Pair] = []
    order = sorted(range(len(problem.volunteers)), key=tightness)
    for step, v in enumerate(order):
        volunteer = problem.volunteers[v]
        remaining = deadline - time.monotonic()
        if time.monotonic() >= (hard_deadline or deadline):
            return None
        shifts = []
        for s in by_volunteer[v]:
            residual = _residual_shift(problem.shifts[s], staff[s], frugal)
            if residual is not None:
                shifts.append(residual)
            elif (volunteer.id, problem.shifts[s].id) in pinned:
                return None
        ids = {s.id for s in shifts}
        single = replace(
            problem,
            volunteers=(
                replace(volunteer, requests=tuple(r for r in volunteer.requests if r.shift in ids)),
            ),
            shifts=tuple(shifts),
            pinned=tuple(
                p for p in problem.pinned if p.volunteer == volunteer.id and p.shift in ids
            ),
            forbidden=(),
            previous=tuple(
                p for p in problem.previous if p.volunteer == volunteer.id and p.shift in ids
            ),
        )
        rm = build_model(ProblemIndex.build(single), [[0]] * len(shifts))
        solver = cp_model.CpSolver()
        share = remaining / max(1, len(order) - step)
        # Past the soft deadline each person gets only a quick look at the objective.
        solver.parameters.max_time_in_seconds = max(0.05, min(1.0, share))
        # One CP-SAT worker stalls on some long single-person schedules that two solve at once.
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed
        status = solver.solve(rm.model)
        if status == cp_model.UNKNOWN:
            # No schedule yet within the share: any schedule that keeps the rules will do, and
            # without the objective one is found much faster.
            rm.model.clear_objective()
            limit = (hard_deadline or deadline) - time.monotonic()
            solver.parameters.max_time_in_seconds = max(0.05, min(3.0, limit))
            status = solver.solve(rm.model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        for pair in rm.assignments(solver):
            s = next(i for i in by_volunteer[v] if problem.shifts[i].id == pair.shift)
            staff[s].append(volunteer)
            chosen.append(pair)
    return tuple(chosen)
