"""Best response: re-plan one volunteer's whole horizon against everyone else's current
assignments with the day-by-day search of `person_dp`, and keep it when the roster costs no
more.

With everyone else fixed, every objective term except fairness changes by a fixed amount per
assignment of this volunteer (one more person on a short shift saves its under weight, on a
full one costs its over weight, and so on), so the search's value is exactly the roster's
saving, and the move is scored without re-scoring the roster. Moves along plateaus (equal
cost) are taken too: they let the next person's move find room.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from scheduling.eligibility import positions_by_volunteer
from scheduling.model.data import ProblemIndex
from scheduling.person_dp import (
    Cover,
    Multipliers,
    PersonDP,
    applies,
    marginal_gains,
    per_assignment,
    pinned_positions,
    plan_person,
)

# Multiplier settings per pass of a re-plan. Since the pass is compiled its cost grows with the
# settings; 20-30 s of best responses from the same rosters (Curtois, load 2.5): Instance24
# 235,591 with 32 and 128,912 with 16, Instance23 54,132 and 37,045, Instance22 43,420 and
# 44,146; with 8 most re-plans found no valid schedule.
REPLAN_BATCH = 16


@dataclass(frozen=True, slots=True)
class Replan:
    volunteer: int
    shifts: tuple[int, ...]  # the new schedule, shift positions
    saving: int  # how much cheaper the roster gets (0: as cheap)


class Replanner:
    """Best-response moves for the volunteers of one problem, each volunteer's prices kept
    from one move to the next (their gains change little between moves)."""

    def __init__(
        self, index: ProblemIndex, eligible: Sequence[Sequence[int]], seed: int = 0
    ) -> None:
        problem = index.problem
        self.index = index
        self.cover = Cover.of(problem)
        self.room = np.array([s.max_people for s in problem.shifts], dtype=np.int64)
        self.positions = [
            np.array(shifts, dtype=np.int64)
            for shifts in positions_by_volunteer(eligible, len(problem.volunteers))
        ]
        self.pinned = pinned_positions(index)
        self.volunteers = [
            v
            for v, volunteer in enumerate(problem.volunteers)
            if len(self.positions[v]) and per_assignment(problem, volunteer)
        ]
        self.skills = bool(problem.weights.skill_under) and any(s.skills for s in problem.shifts)
        self.prices: dict[int, Multipliers | None] = {}
        # Each volunteer's day structure, kept while their candidate shifts stay the same.
        self.structures: dict[int, tuple[bytes, PersonDP]] = {}
        self.rng = random.Random(seed)
        self.queue: list[int] = []
        self.seed = seed

    def _structure(self, v: int, candidates: np.ndarray) -> PersonDP | None:
        """The volunteer's day structure for these candidates, built once per candidate set
        (about 35 ms on Curtois Instance23, an eighth of a best response)."""
        key = candidates.tobytes()
        kept = self.structures.get(v)
        if kept is not None and kept[0] == key:
            return kept[1]
        if not len(candidates) or not applies(self.index, candidates.tolist(), self.pinned[v]):
            return None
        dp = PersonDP(self.index, v, candidates.tolist(), self.pinned[v])
        self.structures[v] = (key, dp)
        return dp

    def next_volunteer(self) -> int | None:
        """Volunteers in a random order, every one once before any again."""
        if not self.queue:
            self.queue = list(self.volunteers)
            self.rng.shuffle(self.queue)
        return self.queue.pop() if self.queue else None

    def replan(
        self,
        v: int,
        counts: np.ndarray,
        own: Collection[int],
        skilled: Callable[[int, str], int] | None,
        deadline: float | None,
    ) -> Replan | None:
        """The volunteer's best schedule against the others, if it costs no more than their
        current one (`own`) and differs from it.

        :param counts: per shift position, how many people (this volunteer included) are on it.
        :param skilled: how many people on a shift have a skill (this volunteer included).
        """
        problem = self.index.problem
        volunteer = problem.volunteers[v]
        positions = self.positions[v]
        mine = np.isin(positions, np.asarray(list(own), dtype=np.int64))
        others = counts[positions] - mine
        open_ = others < self.room[positions]
        candidates, others = positions[open_], others[open_]

        def skilled_others(s: int, skill: str) -> int:
            having = skilled(s, skill) if skilled is not None else 0
            return having - int(s in own and skill in volunteer.skills)

        gains = marginal_gains(
            problem,
            self.cover,
            volunteer,
            candidates,
            others,
            skilled_others if self.skills else None,
        )
        current = float(gains[mine[open_]].sum())  # their present schedule's value
        planned, prices = plan_person(
            self.index,
            v,
            candidates.tolist(),
            gains,
            self.pinned[v],
            seed=self.seed,
            deadline=deadline,
            start=self.prices.get(v),
            polish=1,
            retry_past_deadline=False,
            dp=self._structure(v, candidates),
            batch=REPLAN_BATCH,
        )
        # Prices that found nothing are dropped: the next turn starts afresh.
        self.prices[v] = prices if planned is not None else None
        if planned is None or set(planned) == set(own):
            return None
        where = {int(s): i for i, s in enumerate(candidates)}
        saving = round(sum(float(gains[where[s]]) for s in planned) - current)
        if saving < 0:
            return None
        return Replan(v, tuple(sorted(planned)), saving)
