"""Large-neighbourhood search over a built roster model.

Each round frees a neighbourhood — a window of days, a random group of volunteers, or both —
fixes every other assignment to the incumbent, and lets CP-SAT re-solve that with a short time
limit; a better roster replaces the incumbent. This is what finds good rosters on instances
where CP-SAT on the whole model stalls (long horizons, many staff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduling.model.build import RosterModel


@dataclass(slots=True)
class LnsResult:
    values: dict[int, int]  # variable index → 0/1 of the best roster found
    objective: int
    rounds: int
    improved: int


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
    fraction, rounds, improved = 0.2, 0, 0
    while time.monotonic() < deadline - 0.05:
        rounds += 1
        free = _neighbourhood(rm, rng, fraction)
        sub = rm.model.clone()
        sub.clear_hints()
        for var_index in assign_indices:
            value = best_values[var_index]
            if var_index not in free:
                sub.proto.variables[var_index].domain[:] = [value, value]
            sub.proto.solution_hint.vars.append(var_index)
            sub.proto.solution_hint.values.append(value)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, min(2.0, deadline - time.monotonic()))
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
