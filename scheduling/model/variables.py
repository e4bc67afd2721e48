"""The decision variables: one Boolean per eligible (volunteer, shift) pair, plus the helper
Booleans rules share (a volunteer works on a day, works a weekend), created on first use.

Objective terms are collected per part (`under`, `requests`, ...) so the solution can report
each part and the build can add them up once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduling.model.data import ProblemIndex
from scheduling.problem import OBJECTIVE_PARTS

Literal = cp_model.IntVar


@dataclass(slots=True)
class Variables:
    index: ProblemIndex
    model: cp_model.CpModel
    assign: dict[tuple[int, int], cp_model.IntVar] = field(default_factory=dict)
    shifts_of: list[list[int]] = field(default_factory=list)  # per volunteer, eligible shifts
    people_of: list[list[int]] = field(default_factory=list)  # per shift, eligible volunteers
    terms: dict[str, list[tuple[int, cp_model.IntVar]]] = field(
        default_factory=lambda: {part: [] for part in OBJECTIVE_PARTS}
    )
    constants: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTIVE_PARTS, 0))
    guards: dict[str, cp_model.IntVar] = field(default_factory=dict)
    explain: bool = False
    _works: dict[tuple[int, int], cp_model.IntVar | None] = field(default_factory=dict)
    _weekend: dict[tuple[int, int], cp_model.IntVar | None] = field(default_factory=dict)
    _by_day: dict[int, dict[int, list[int]]] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        model: cp_model.CpModel,
        index: ProblemIndex,
        eligible: Sequence[Sequence[int]],
        explain: bool = False,
    ) -> Variables:
        problem = index.problem
        variables = cls(index=index, model=model, explain=explain)
        variables.shifts_of = [[] for _ in problem.volunteers]
        variables.people_of = [list(people) for people in eligible]
        for s, people in enumerate(eligible):
            shift_id = problem.shifts[s].id
            for v in people:
                variables.assign[(v, s)] = model.new_bool_var(
                    f"assign_v{problem.volunteers[v].id}_s{shift_id}"
                )
                variables.shifts_of[v].append(s)
        return variables

    def day_shifts(self, volunteer: int) -> dict[int, list[int]]:
        by_day: dict[int, list[int]] = defaultdict(list)
        for s in self.shifts_of[volunteer]:
            by_day[self.index.shifts[s].day].append(s)
        return by_day

    def _day_shifts(self, volunteer: int) -> dict[int, list[int]]:
        found = self._by_day.get(volunteer)
        if found is None:
            found = self._by_day[volunteer] = self.day_shifts(volunteer)
        return found

    def works(self, volunteer: int, day: int) -> cp_model.IntVar | None:
        """True exactly when the volunteer starts a shift on the day; None if they cannot."""
        key = (volunteer, day)
        if key in self._works:
            return self._works[key]
        shifts = self._day_shifts(volunteer).get(day, [])
        literal: cp_model.IntVar | None = None
        if len(shifts) == 1:
            literal = self.assign[(volunteer, shifts[0])]
        elif shifts:
            literal = self.model.new_bool_var(f"works_v{volunteer}_d{day}")
            chosen = [self.assign[(volunteer, s)] for s in shifts]
            if self.index.problem.rules.one_shift_per_day:
                # At most one shift a day: the day is worked exactly when their sum is 1, a
                # linear link that the LP relaxation can use (max_equality is weaker).
                self.model.add(literal == sum(chosen))
            else:
                self.model.add_max_equality(literal, chosen)
        self._works[key] = literal
        return literal

    def works_weekend(self, volunteer: int, weekend: int, days: Sequence[int]) -> Literal | None:
        key = (volunteer, weekend)
        if key in self._weekend:
            return self._weekend[key]
        worked = [w for w in (self.works(volunteer, d) for d in days) if w is not None]
        literal: cp_model.IntVar | None = None
        if len(worked) == 1:
            literal = worked[0]
        elif worked:
            literal = self.model.new_bool_var(f"weekend_v{volunteer}_w{weekend}")
            self.model.add_max_equality(literal, worked)
        self._weekend[key] = literal
        return literal

    def guard(self, name: str) -> list[cp_model.IntVar]:
        """Enforcement literal for a rule that can make the problem infeasible, in explain mode.

        Only pinned pairs and minimum rules can: with neither, assigning nobody is feasible.
        """
        if not self.explain:
            return []
        if name not in self.guards:
            self.guards[name] = self.model.new_bool_var(f"enforce[{name}]")
        return [self.guards[name]]

    def cost(self, part: str, coefficient: int, literal: cp_model.IntVar) -> None:
        if coefficient:
            self.terms[part].append((coefficient, literal))
