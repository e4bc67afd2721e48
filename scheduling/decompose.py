"""Split a problem into independent parts: volunteers and shifts linked by eligible pairs.

Two shifts belong together only if some volunteer may take both; a volunteer who can reach no
shift of another part never links them. Each part becomes a Problem slice (a picklable frozen
dataclass) that can be solved on its own, in another process if need be.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from scheduling.problem import Pair, Problem


@dataclass(frozen=True, slots=True)
class Component:
    volunteers: tuple[int, ...]  # positions in the whole problem
    shifts: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.volunteers) + len(self.shifts)


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def components(problem: Problem, eligible: Sequence[Sequence[int]]) -> list[Component]:
    """Connected parts with at least one eligible pair, largest first.

    Volunteers with no eligible shift and shifts with no eligible volunteer are in no part:
    nothing can be decided for them.
    """
    n_volunteers = len(problem.volunteers)
    union = _UnionFind(n_volunteers + len(problem.shifts))
    for s, people in enumerate(eligible):
        for v in people:
            union.union(v, n_volunteers + s)
    members: dict[int, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for s, people in enumerate(eligible):
        if people:
            members[union.find(n_volunteers + s)][1].append(s)
    for v in range(n_volunteers):
        root = union.find(v)
        if root in members:
            members[root][0].append(v)
    parts = [Component(tuple(vs), tuple(ss)) for vs, ss in members.values()]
    parts.sort(key=lambda c: (-sum(len(eligible[s]) for s in c.shifts), c.shifts[0]))
    return parts


def slice_problem(problem: Problem, component: Component) -> Problem:
    """The sub-problem of one part: its volunteers (with requests for its shifts only), its
    shifts, and the pinned, forbidden and previous pairs among them."""
    shift_ids = {problem.shifts[s].id for s in component.shifts}
    volunteers = tuple(
        replace(v, requests=tuple(r for r in v.requests if r.shift in shift_ids))
        for v in (problem.volunteers[p] for p in component.volunteers)
    )
    volunteer_ids = {v.id for v in volunteers}

    def keep(pairs: Sequence[Pair]) -> tuple[Pair, ...]:
        return tuple(p for p in pairs if p.volunteer in volunteer_ids and p.shift in shift_ids)

    return replace(
        problem,
        volunteers=volunteers,
        shifts=tuple(problem.shifts[s] for s in component.shifts),
        pinned=keep(problem.pinned),
        forbidden=keep(problem.forbidden),
        previous=keep(problem.previous),
    )


def slice_eligible(component: Component, eligible: Sequence[Sequence[int]]) -> list[list[int]]:
    """Eligibility of a part, renumbered to the slice's positions."""
    local = {v: i for i, v in enumerate(component.volunteers)}
    return [[local[v] for v in eligible[s]] for s in component.shifts]
