"""Data → variables → rules → model: the CP-SAT model of one Problem."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduling.model.data import ProblemIndex
from scheduling.model.objective import minimize
from scheduling.model.rules import ALL_RULES
from scheduling.model.variables import Variables
from scheduling.problem import Pair


@dataclass(slots=True)
class RosterModel:
    model: cp_model.CpModel
    variables: Variables

    def add_hint(self, assignments: Iterable[Pair]) -> None:
        index = self.variables.index
        chosen = {(index.volunteer_pos[p.volunteer], index.shift_pos[p.shift]) for p in assignments}
        for key, literal in self.variables.assign.items():
            self.model.add_hint(literal, key in chosen)

    def assignments(self, solver: cp_model.CpSolver) -> tuple[Pair, ...]:
        index = self.variables.index
        volunteers, shifts = index.problem.volunteers, index.problem.shifts
        chosen = sorted(
            key for key, literal in self.variables.assign.items() if solver.value(literal)
        )
        return tuple(
            Pair(volunteers[v].id, shifts[s].id)
            for v, s in sorted(chosen, key=lambda k: (k[1], k[0]))
        )


def build_model(
    index: ProblemIndex, eligible: Sequence[Sequence[int]], explain: bool = False
) -> RosterModel:
    """The full model: one Boolean per eligible pair, every rule, the weighted objective.

    :param eligible: per shift position, the positions of the volunteers who may take it.
    :param explain: guard pinned pairs and minimum rules with assumption literals.
    """
    model = cp_model.CpModel()
    variables = Variables.create(model, index, eligible, explain=explain)
    for rule in ALL_RULES:
        rule.apply(model, variables)
    minimize(model, variables)
    if explain:
        model.add_assumptions(list(variables.guards.values()))
    return RosterModel(model, variables)
