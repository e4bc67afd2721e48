"""Fill empty places by augmenting paths: move a volunteer from one shift to another to free
someone for the empty one, as a matching algorithm would, under the timing rules.

A shift is short although a max-flow says every place is fillable when each volunteer who could
take it already works a clashing shift (the same day, too little rest, a forbidden succession).
Moving that volunteer is fine if someone else can take the shift they leave, and so on: a
breadth-first search over shifts finds the shortest such chain. Each step only allows a
volunteer who holds every skill of the shift and clashes with at most one of their shifts (the
one they leave). Other limits (totals, stretches, weekends) are not modelled here: the repaired
roster is checked by `scheduling.checker` and kept only if it breaks no hard rule and scores
better.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from scheduling.checker import check
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.problem import Pair, Problem

# Shifts one search may visit: beyond this a chain is unlikely and the search too costly.
MAX_VISITED = 5_000


class _Roster:
    def __init__(
        self, problem: Problem, eligible: Sequence[Sequence[int]], assignments: Sequence[Pair]
    ) -> None:
        self.problem = problem
        self.eligible = eligible
        volunteers, shifts = problem.volunteers, problem.shifts
        position = {v.id: p for p, v in enumerate(volunteers)}
        shift_pos = {s.id: p for p, s in enumerate(shifts)}
        self.position, self.shift_pos = position, shift_pos
        self.people: list[set[int]] = [set() for _ in shifts]
        self.works: list[set[int]] = [set() for _ in volunteers]
        for pair in set(assignments):
            v, s = position[pair.volunteer], shift_pos[pair.shift]
            self.people[s].add(v)
            self.works[v].add(s)
        self.day = [problem.day_index(s.start) for s in shifts]
        self.start = [s.start.timestamp() for s in shifts]
        self.end = [s.end.timestamp() for s in shifts]
        self.rest = problem.rules.min_rest_minutes * 60
        self.successions = set(problem.rules.forbidden_successions)
        self.pinned = {(position[p.volunteer], shift_pos[p.shift]) for p in problem.pinned}
        self.skilled = [
            [v for v in people if all(skill in volunteers[v].skills for skill in shifts[s].skills)]
            for s, people in enumerate(eligible)
        ]

    def clash(self, a: int, b: int) -> bool:
        """Whether one volunteer may not work both shifts a and b."""
        if self.start[a] < self.end[b] + self.rest and self.start[b] < self.end[a] + self.rest:
            return True
        day_a, day_b = self.day[a], self.day[b]
        if self.problem.rules.one_shift_per_day and day_a == day_b:
            return True
        kind_a, kind_b = self.problem.shifts[a].kind, self.problem.shifts[b].kind
        return (day_b == day_a + 1 and (kind_a, kind_b) in self.successions) or (
            day_a == day_b + 1 and (kind_b, kind_a) in self.successions
        )

    def clashes(self, v: int, s: int) -> list[int]:
        return [other for other in self.works[v] if other != s and self.clash(other, s)]

    def missing(self, s: int) -> int:
        return max(0, self.problem.shifts[s].required - len(self.people[s]))

    def augment(self, target: int, deadline: float | None = None) -> bool:
        """Fill one place of `target` through the shortest chain of moves, if there is one
        (found before the deadline)."""
        # came_from[c] = (x, v): v leaves shift c to join shift x.
        came_from: dict[int, tuple[int, int]] = {}
        queue = deque([target])
        seen = {target}
        while queue and len(seen) < MAX_VISITED:
            if deadline is not None and len(seen) % 64 == 0 and time.monotonic() > deadline:
                return False
            shift = queue.popleft()
            for v in self.skilled[shift]:
                if v in self.people[shift]:
                    continue
                clashing = self.clashes(v, shift)
                if not clashing:
                    return self._apply(target, shift, v, came_from)
                if len(clashing) == 1:
                    other = clashing[0]
                    if other not in seen and (v, other) not in self.pinned:
                        seen.add(other)
                        came_from[other] = (shift, v)
                        queue.append(other)
        return False

    def _apply(
        self, target: int, last: int, free: int, came_from: dict[int, tuple[int, int]]
    ) -> bool:
        moves: list[tuple[int, int | None, int]] = [(free, None, last)]
        shift = last
        while shift != target:
            joins, v = came_from[shift]
            moves.append((v, shift, joins))
            shift = joins
        for v, leaves, joins in moves:
            if leaves is not None:
                self.people[leaves].discard(v)
                self.works[v].discard(leaves)
            self.people[joins].add(v)
            self.works[v].add(joins)
        # A volunteer met twice on the chain may now clash with their own new shifts.
        if all(not self.clashes(v, joins) for v, _, joins in moves):
            return True
        for v, leaves, joins in reversed(moves):
            self.people[joins].discard(v)
            self.works[v].discard(joins)
            if leaves is not None:
                self.people[leaves].add(v)
                self.works[v].add(leaves)
        return False

    def pairs(self) -> tuple[Pair, ...]:
        volunteers, shifts = self.problem.volunteers, self.problem.shifts
        return tuple(
            Pair(volunteers[v].id, shifts[s].id)
            for s, people in enumerate(self.people)
            for v in sorted(people)
        )


def fill_by_moves(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    assignments: Sequence[Pair],
    deadline: float | None = None,
) -> tuple[Pair, ...]:
    """The roster with empty places filled through chains of moves where that is possible.

    :param eligible: per shift position, the positions of the volunteers who may take it.
    :param deadline: a `time.monotonic()` moment to stop searching at.
    :return: the repaired roster if it keeps every hard rule and scores better, else the
        original assignments.
    """
    roster = _Roster(problem, eligible, assignments)
    changed = False
    for s in range(len(problem.shifts)):
        while roster.missing(s):
            if deadline is not None and time.monotonic() > deadline:
                break
            if not roster.augment(s, deadline):
                break
            changed = True
    if not changed:
        return tuple(assignments)
    repaired = roster.pairs()
    if not check(problem, repaired).ok:
        return tuple(assignments)
    index = ProblemIndex.build(problem)
    if sum(score(index, repaired).values()) >= sum(score(index, assignments).values()):
        return tuple(assignments)
    return repaired
