"""Large-neighbourhood search for parts too big to model whole: clusters of shifts near in time
and place are re-solved one at a time against everyone else's fixed schedule.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from ortools.sat.python import cp_model

from scheduling.best_response import Replanner
from scheduling.model.build import build_model
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.problem import Pair, Problem

# Time a best-response round needs left before the deadline (one pass of the day-by-day
# search on a 364-day horizon takes up to a few tenths of a second on a busy machine).
REPLAN_LEFT_S = 0.5
# How much of its past saving rate (and duration) a kind of round keeps after each of its
# rounds, and the least share of the time any kind that can still run is given.
RATE_MEMORY = 0.8
MIN_SHARE = 0.1


@dataclass(slots=True)
class _SliceSearch:
    """LNS for parts too big to model whole: each round models only a cluster of shifts (near
    in time and place), every volunteer who may take one, and those volunteers' other current
    shifts as pinned pairs, so every rule that spans a person's week still holds."""

    problem: Problem
    eligible: Sequence[Sequence[int]]
    index: ProblemIndex
    rng: random.Random
    staff: list[set[int]]
    by_volunteer: list[set[int]]

    @classmethod
    def create(
        cls, problem: Problem, eligible: Sequence[Sequence[int]], start: Sequence[Pair], seed: int
    ) -> _SliceSearch:
        index = ProblemIndex.build(problem)
        search = cls(
            problem,
            eligible,
            index,
            random.Random(seed),
            [set() for _ in problem.shifts],
            [set() for _ in problem.volunteers],
        )
        for pair in start:
            v, s = index.volunteer_pos[pair.volunteer], index.shift_pos[pair.shift]
            search.staff[s].add(v)
            search.by_volunteer[v].add(s)
        return search

    def cluster(self, size: int) -> list[int]:
        shifts = self.problem.shifts
        short = [s for s in range(len(shifts)) if len(self.staff[s]) < shifts[s].required]
        seed = self.rng.choice(short) if short and self.rng.random() < 0.6 else None
        if seed is None:
            seed = self.rng.randrange(len(shifts))
        day = self.index.shifts[seed].day
        near_people = set(self.eligible[seed])
        nearby = [
            s
            for s in range(len(shifts))
            if abs(self.index.shifts[s].day - day) <= 1
            and not near_people.isdisjoint(self.eligible[s])
        ]
        origin = shifts[seed].location

        def closeness(s: int) -> float:
            where = shifts[s].location
            if origin is None or where is None:
                return 0.0
            return (where.lat - origin.lat) ** 2 + (where.lon - origin.lon) ** 2

        nearby.sort(key=closeness)
        return nearby[:size]

    def round(self, size: int, time_limit: float, workers: int, deadline: float) -> int:
        """Re-solve one cluster; keep the result if it costs less. How much it saved.

        The solve gets `time_limit` or what building the sub-model left before `deadline`."""
        problem = self.problem
        cluster = self.cluster(size)
        inside = set(cluster)
        people = sorted({v for s in cluster for v in self.eligible[s]})
        fixed = sorted({s for v in people for s in self.by_volunteer[v]} - inside)
        shift_list = cluster + fixed
        local = {v: i for i, v in enumerate(people)}
        sub_eligible = [[local[v] for v in self.eligible[s]] for s in cluster] + [
            sorted(local[v] for v in self.staff[s] if v in local) for s in fixed
        ]
        shift_ids = {problem.shifts[s].id for s in shift_list}
        volunteers = tuple(
            replace(
                problem.volunteers[v],
                requests=tuple(r for r in problem.volunteers[v].requests if r.shift in shift_ids),
            )
            for v in people
        )
        ids = {v.id for v in volunteers}
        held = tuple(
            Pair(problem.volunteers[v].id, problem.shifts[s].id)
            for s in fixed
            for v in self.staff[s]
            if v in local
        )
        sub = replace(
            problem,
            volunteers=volunteers,
            shifts=tuple(problem.shifts[s] for s in shift_list),
            pinned=held
            + tuple(p for p in problem.pinned if p.volunteer in ids and p.shift in shift_ids),
            forbidden=(),
            previous=tuple(
                p for p in problem.previous if p.volunteer in ids and p.shift in shift_ids
            ),
        )
        sub_index = ProblemIndex.build(sub)
        current = tuple(
            Pair(problem.volunteers[v].id, problem.shifts[s].id)
            for s in shift_list
            for v in self.staff[s]
            if v in local
        )
        before = sum(score(sub_index, current).values())
        rm = build_model(sub_index, sub_eligible)
        rm.add_hint(current)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(
            0.01, min(time_limit, deadline - time.monotonic())
        )
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = self.rng.randrange(1 << 30)
        if solver.solve(rm.model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return 0
        found = rm.assignments(solver)
        after = sum(score(sub_index, found).values())
        if after >= before:
            return 0
        for s in cluster:
            for v in self.staff[s]:
                self.by_volunteer[v].discard(s)
            self.staff[s] = set()
        for pair in found:
            s = self.index.shift_pos[pair.shift]
            if s in inside:
                v = self.index.volunteer_pos[pair.volunteer]
                self.staff[s].add(v)
                self.by_volunteer[v].add(s)
        return before - after

    def replan(self, replanner: Replanner, deadline: float) -> int | None:
        """Re-plan the next volunteer's whole horizon against everyone else (a best response);
        how much the roster got cheaper (0 if it only changed or stayed), None if nobody can
        be re-planned."""
        v = replanner.next_volunteer()
        if v is None:
            return None
        volunteers = self.problem.volunteers
        counts = np.fromiter((len(people) for people in self.staff), np.int64, len(self.staff))

        def skilled(s: int, skill: str) -> int:
            return sum(1 for p in self.staff[s] if skill in volunteers[p].skills)

        own = self.by_volunteer[v]
        move = replanner.replan(v, counts, own, skilled, deadline)
        if move is None:
            return 0
        for s in own:
            self.staff[s].discard(v)
        self.by_volunteer[v] = set(move.shifts)
        for s in move.shifts:
            self.staff[s].add(v)
        return move.saving

    def pairs(self) -> tuple[Pair, ...]:
        volunteers, shifts = self.problem.volunteers, self.problem.shifts
        return tuple(
            Pair(volunteers[v].id, shifts[s].id)
            for s in range(len(shifts))
            for v in sorted(self.staff[s])
        )


def improve_by_slices(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    start: Sequence[Pair],
    deadline: float,
    seed: int = 0,
    workers: int = 1,
    on_improve: Callable[[int], None] | None = None,
) -> tuple[tuple[Pair, ...], int]:
    """Improve a valid roster of a large part cluster by cluster until the deadline.

    :return: the best roster and the number of rounds run.
    """
    search = _SliceSearch.create(problem, eligible, start, seed)
    replanner = Replanner(search.index, eligible, seed)
    # Cluster rounds and best-response rounds, each chosen in proportion to what it has saved
    # per second lately (a moving average; every kind keeps a share so that it can come back).
    # Shares are of time: a kind's rounds are drawn in inverse proportion to how long they
    # take (on Curtois Instance24 a cluster round takes 4-5 s, a best response 0.2 s, and a
    # tenth of the rounds gave clusters most of the time).
    rates = {"cluster": 1.0, "replan": 1.0}
    took = {"cluster": 1.0, "replan": 0.2}  # seconds a round, moving average
    kinds = ["cluster", "replan"] if replanner.volunteers else ["cluster"]
    size, rounds = 24, 0
    # How long the last cluster round took: most of it is building the sub-model, which its
    # time limit does not cover (on Curtois Instance24 a round begun half a second before the
    # deadline ended the solve at 60.4 s of 60).
    cluster_s = 0.0
    while time.monotonic() < deadline - 0.1:
        rounds += 1
        total = sum(rates[k] for k in kinds) or 1.0
        shares = [max(rates[k] / total, MIN_SHARE) / took[k] for k in kinds]
        kind = search.rng.choices(kinds, shares)[0]
        left = deadline - time.monotonic()
        if kind == "replan" and left < REPLAN_LEFT_S:
            kind = "cluster"  # a pass of the day-by-day search may not fit any more
        if kind == "cluster" and left < cluster_s:
            if "replan" not in kinds or left < REPLAN_LEFT_S:
                break  # neither kind of round fits in what is left
            kind = "replan"
        began = time.monotonic()
        if kind == "replan":
            saved = search.replan(replanner, min(deadline, time.monotonic() + 1.0))
            if saved is None:
                kinds.remove("replan")
                continue
        else:
            limit = min(1.0, deadline - time.monotonic())
            saved = search.round(size, limit, workers, deadline)
            cluster_s = time.monotonic() - began
            # Keep rounds short: grow clusters while they solve quickly, shrink when not.
            quick = cluster_s < limit * 0.5
            size = min(200, size + 4) if quick else max(8, size - 4)
        if saved and on_improve is not None:
            on_improve(rounds)
        spent = max(1e-3, time.monotonic() - began)
        rates[kind] = (1 - RATE_MEMORY) * saved / spent + RATE_MEMORY * rates[kind]
        took[kind] = (1 - RATE_MEMORY) * spent + RATE_MEMORY * took[kind]
    return search.pairs(), rounds
