"""The objective: the CP-SAT expression built from the rules' terms, and a plain re-scoring of
any list of assignments, which is what a Solution reports (a model stopped early may carry slack
in its own objective; the roster's true cost is what the coordinator pays)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ortools.sat.python import cp_model

from scheduling.model.data import ProblemIndex, whole_km
from scheduling.model.variables import Variables
from scheduling.problem import OBJECTIVE_PARTS, Pair


def objective_expression(variables: Variables) -> cp_model.LinearExprT:
    constant = sum(variables.constants.values())
    terms = [term for part in OBJECTIVE_PARTS for term in variables.terms[part]]
    if not terms:
        return constant
    return (
        cp_model.LinearExpr.weighted_sum(
            [literal for _, literal in terms], [coefficient for coefficient, _ in terms]
        )
        + constant
    )


def minimize(model: cp_model.CpModel, variables: Variables) -> None:
    model.minimize(objective_expression(variables))


def score(index: ProblemIndex, assignments: Iterable[Pair]) -> dict[str, int]:
    """Objective parts of a roster, straight from the format's definitions."""
    problem = index.problem
    weights = problem.weights
    chosen = set(assignments)
    people: dict[int, list[int]] = defaultdict(list)
    minutes: dict[int, int] = defaultdict(int)
    parts = dict.fromkeys(OBJECTIVE_PARTS, 0)
    for pair in chosen:
        v, s = index.volunteer_pos[pair.volunteer], index.shift_pos[pair.shift]
        people[s].append(v)
        minutes[v] += index.shifts[s].minutes
        if weights.distance:
            volunteer, shift = problem.volunteers[v], problem.shifts[s]
            parts["distance"] += weights.distance * whole_km(volunteer, shift)
    for s, shift in enumerate(problem.shifts):
        count = len(people[s])
        parts["under"] += max(0, shift.required - count) * problem.under_weight(shift)
        parts["over"] += max(0, count - shift.required) * problem.over_weight(shift)
        for skill, need in shift.skills.items():
            having = sum(1 for v in people[s] if skill in problem.volunteers[v].skills)
            parts["skill_under"] += max(0, need - having) * weights.skill_under
    for v, volunteer in enumerate(problem.volunteers):
        for request in volunteer.requests:
            if request.want != (Pair(volunteer.id, request.shift) in chosen):
                parts["requests"] += request.weight
        if volunteer.target_minutes is not None:
            parts["fairness"] += weights.fairness * max(0, minutes[v] - volunteer.target_minutes)
    parts["change"] = weights.change * sum(1 for p in set(problem.previous) if p not in chosen)
    return parts
