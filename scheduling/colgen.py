"""Price and branch: column generation over whole-horizon schedules, then an integer master.

A column is one volunteer's schedule over the whole horizon that keeps every one of their hard
rules; its cost is what the schedule adds to the objective by itself (requests, distance,
dropped previous assignments: every term that is paid per assignment). The master chooses one
column per volunteer (convexity rows) and pays for cover per shift through slack: missing
people at the shift's under weight, extra people at its over weight; the capacity (max_people)
is a hard row.

- The linear master (GLOP) gives a dual per shift (what one more person there is worth) and
  per volunteer. Pricing finds each volunteer's best schedule with those duals as gains, less
  the schedule's own cost; a schedule of negative reduced cost is a new column. Where one
  shift a day is the rule, `labelling` finds it exactly (the resource rules as resources);
  elsewhere, or where labelling gives up, `person_dp`'s day-by-day search prices the resource
  rules by multipliers and CP-SAT on the volunteer alone is the fallback. Duals are smoothed
  towards the previous ones (Wentges), falling back to the plain duals when the smoothed ones
  find nothing.
- The integer master (CP-SAT over the generated columns, one Boolean each, hinted with the
  incumbent) gives a roster: every column passed the checker for its volunteer, and the cover
  rows are the roster's own cover terms, so its objective is the roster's score.

Labelling made column generation several times faster on Curtois: Instance12's master
converged (tailed off at 4,040) in 15 s where the search with CP-SAT behind it took 40-60 s,
Instance8's in 5-8 s where it took 18-25 s. The search alone is a heuristic and the master's
value is never reported as a bound.

It applies where every objective term is per assignment (no fairness target) and shift skill
needs are absent or weightless, and the search models every volunteer's shifts (`applies`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from scheduling import labelling
from scheduling.eligibility import positions_by_volunteer
from scheduling.model.build import build_model
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.person_dp import (
    MAX_PASSES,
    Cover,
    Multipliers,
    PersonDP,
    keeps_rules,
    marginal_gains,
    per_assignment,
    pinned_positions,
)
from scheduling.person_dp import applies as dp_applies
from scheduling.problem import Pair

# Smoothing of the duals priced: this share of the previous (smoothed) duals, the rest the
# linear master's.
SMOOTHING = 0.5
# A column enters when its reduced cost is below minus this.
ENTER = 1e-6
# Columns a volunteer's pricing may add per round, and the search's passes after its first
# valid schedule.
PER_PRICING = 5
POLISH = 2
# Column generation stops when TAIL_ROUNDS whole rounds of pricing lower the master's value by
# less than this share of it (tailing off: Curtois Instance6 spent its last 8 of 30 s on 0.1%).
TAIL = 0.001
TAIL_ROUNDS = 2
# ... and only after this long: on a plateau of a small master (degenerate rounds) it stopped a
# 4-person week at 109 where going on reached the optimum, 103.
TAIL_AFTER_S = 2.0
# Volunteers priced between two solves of the linear master: at least, and at most when the
# solve takes longer than pricing them.
CHUNK = 6
MAX_CHUNK = 64
LP_RATIO = 3.0
# Longest time for the integer master (over the columns of a converged master it seldom beats
# the dive's roster: Curtois Instance6, 2,052 both, 3 s).
INTEGER_S = 3.0
# Share of the volunteers still free that a step of the dive fixes (at least one).
DIVE_FIX = 0.15
DIVE_ROUNDS = 0
DIVE_TAIL_AFTER_S = math.inf
# A further dive starts only with this many times the first one's time left, and must end
# within it.
DIVE_AGAIN = 1.2
# Further dives rank each volunteer's best share of one schedule times 1 + this much noise.
DIVE_NOISE = 0.3
# Longest share of the time left after generation for proving the master's bound before the
# dives (one round of exact pricing at its duals: about 0.3 s on Curtois Instance12).
BOUND_SHARE = 0.1
# A column's value in the linear master above which its assignments count as its support.
SUPPORT_MIN = 1e-6
# Pricing by CP-SAT where the search finds nothing: its time limit per volunteer, and the
# scale of the gains (CP-SAT wants integers).
CP_PRICE_S = 0.5
CP_SCALE = 1000.0


@dataclass(frozen=True, slots=True)
class Column:
    volunteer: int
    shifts: tuple[int, ...]  # shift positions, ascending
    cost: int  # the schedule's own objective terms


@dataclass(slots=True)
class MasterResult:
    pairs: tuple[Pair, ...]
    objective: int  # the roster's score
    optimal: bool  # optimal over the generated columns (not over every schedule)


def applies(index: ProblemIndex, eligible: Sequence[Sequence[int]]) -> bool:
    """Whether column generation models this problem: every term per assignment, no weighted
    skill needs, and the day-by-day search applies to every volunteer's shifts."""
    problem = index.problem
    if problem.weights.skill_under and any(s.skills for s in problem.shifts):
        return False
    if not all(per_assignment(problem, v) for v in problem.volunteers):
        return False
    pinned = pinned_positions(index)
    positions = positions_by_volunteer(eligible, len(problem.volunteers))
    return all(dp_applies(index, positions[v], pinned[v]) for v in range(len(positions)))


class _Schedules(cp_model.CpSolverSolutionCallback):
    """Every solution CP-SAT finds for one volunteer, as the indices of the shifts taken."""

    def __init__(self, chosen: Sequence[cp_model.IntVar]) -> None:
        super().__init__()
        self.chosen = chosen
        self.found: list[np.ndarray] = []

    def on_solution_callback(self) -> None:
        self.found.append(np.flatnonzero([self.boolean_value(x) for x in self.chosen]))


class ColumnGeneration:
    """The columns, the linear master over them, pricing, and the integer master."""

    def __init__(
        self,
        index: ProblemIndex,
        eligible: Sequence[Sequence[int]],
        seed: int = 0,
        workers: int = 1,
    ):
        problem = index.problem
        self.index = index
        self.seed = seed
        # Volunteers priced side by side: the search's kernel and CP-SAT let go of the
        # interpreter lock, and each volunteer's pricing touches only its own state.
        self.workers = max(1, workers)
        n_shifts = len(problem.shifts)
        self.n_volunteers = len(problem.volunteers)
        self.cover = Cover.of(problem)
        self.room = np.array([s.max_people for s in problem.shifts], dtype=np.int64)
        self.eligible_count = np.array([len(people) for people in eligible], dtype=np.int64)
        self.pinned = pinned_positions(index)
        self.positions = [
            np.array(shifts, dtype=np.int64)
            for shifts in positions_by_volunteer(eligible, self.n_volunteers)
        ]
        for v, volunteer in enumerate(problem.volunteers):
            if volunteer.limits.max_consecutive_days == 0:
                self.positions[v] = np.zeros(0, dtype=np.int64)
        # Each candidate's own cost: the gains against a cover that wants nobody and charges
        # nothing are the per-assignment terms alone.
        nothing = Cover(np.zeros(n_shifts, np.int64), np.zeros(n_shifts), np.zeros(n_shifts))
        self.own_cost = [
            -marginal_gains(
                problem, nothing, volunteer, self.positions[v], np.zeros(len(self.positions[v]))
            )
            for v, volunteer in enumerate(problem.volunteers)
        ]
        self.where = [{int(s): i for i, s in enumerate(p.tolist())} for p in self.positions]
        # The objective of the empty roster, less its cover part: the constant every roster pays.
        empty = sum(score(index, ()).values())
        self.offset = empty - int((self.cover.required * self.cover.under).sum())
        self.columns: list[Column] = []
        self.seen: set[tuple[int, tuple[int, ...]]] = set()
        self.mine: list[list[Column]] = [[] for _ in range(self.n_volunteers)]
        self.dps: dict[int, PersonDP] = {}
        self.models: dict[int, tuple[cp_model.CpModel, list[cp_model.IntVar]]] = {}
        self.resources: dict[int, labelling.Resources | None] = {}
        self.warm: dict[int, np.ndarray] = {}  # per volunteer, the last labelling's multipliers
        self.prices: dict[int, Multipliers | None] = {}
        self.lp_value: float | None = None
        self.iterations = 0
        self.converged = False
        self.tailed = False
        self.dive_objective: int | None = None
        self.bound: int | None = None  # a proven lower bound, where price and branch found one
        self._pool: ThreadPoolExecutor | None = None
        self._lp_init()

    # ------------------------------------------------------------------ columns

    def column_of(self, v: int, shifts: Iterable[int]) -> Column:
        ordered = tuple(sorted(int(s) for s in shifts))
        where = self.where[v]
        cost = round(sum(float(self.own_cost[v][where[s]]) for s in ordered))
        return Column(v, ordered, cost)

    def add(self, column: Column) -> bool:
        key = (column.volunteer, column.shifts)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.columns.append(column)
        self.mine[column.volunteer].append(column)
        self._lp_column(column)
        return True

    def add_roster(self, pairs: Iterable[Pair]) -> list[Column]:
        """Every volunteer's schedule in a valid roster, as columns; returns them per volunteer."""
        index = self.index
        mine: list[list[int]] = [[] for _ in range(self.n_volunteers)]
        for pair in set(pairs):
            mine[index.volunteer_pos[pair.volunteer]].append(index.shift_pos[pair.shift])
        columns = [self.column_of(v, shifts) for v, shifts in enumerate(mine)]
        for column in columns:
            self.add(column)
        return columns

    # ------------------------------------------------------------------ the linear master

    def _lp_init(self) -> None:
        lp = pywraplp.Solver.CreateSolver("GLOP")
        if lp is None:  # pragma: no cover - GLOP ships with OR-Tools
            raise RuntimeError("GLOP is not available")
        self.lp = lp
        infinity = lp.infinity()
        objective = lp.Objective()
        objective.SetMinimization()
        objective.SetOffset(float(self.offset))
        self.lp_vars: list[pywraplp.Variable] = []
        self.convexity = [lp.Constraint(1.0, 1.0) for _ in range(self.n_volunteers)]
        self.cover_rows = []
        self.cap_rows: dict[int, pywraplp.Constraint] = {}
        required = self.cover.required
        for s in range(len(required)):
            row = lp.Constraint(float(required[s]), float(required[s]))
            under = lp.NumVar(0.0, float(required[s]), "")
            over = lp.NumVar(0.0, infinity, "")
            row.SetCoefficient(under, 1.0)
            row.SetCoefficient(over, -1.0)
            objective.SetCoefficient(under, float(self.cover.under[s]))
            objective.SetCoefficient(over, float(self.cover.over[s]))
            self.cover_rows.append(row)
            if self.eligible_count[s] > self.room[s]:
                self.cap_rows[s] = lp.Constraint(-infinity, float(self.room[s]))

    def _lp_column(self, column: Column) -> None:
        lp = self.lp
        var = lp.NumVar(0.0, lp.infinity(), "")
        self.lp_vars.append(var)
        lp.Objective().SetCoefficient(var, float(column.cost))
        self.convexity[column.volunteer].SetCoefficient(var, 1.0)
        for s in column.shifts:
            self.cover_rows[s].SetCoefficient(var, 1.0)
            cap = self.cap_rows.get(s)
            if cap is not None:
                cap.SetCoefficient(var, 1.0)

    def solve_lp(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Solve the linear master: per shift the dual of one more person there (cover and
        capacity rows together), per volunteer the convexity dual; None if GLOP fails."""
        status = self.lp.Solve()
        if status != pywraplp.Solver.OPTIMAL:
            return None
        self.lp_value = self.lp.Objective().Value()
        shift_duals = np.array([row.dual_value() for row in self.cover_rows])
        for s, cap in self.cap_rows.items():
            shift_duals[s] += cap.dual_value()
        volunteer_duals = np.array([row.dual_value() for row in self.convexity])
        return shift_duals, volunteer_duals

    # ------------------------------------------------------------------ pricing

    def _dp(self, v: int) -> PersonDP | None:
        dp = self.dps.get(v)
        if dp is None:
            mine = self.positions[v].tolist()
            if not dp_applies(self.index, mine, self.pinned[v]):
                return None
            dp = self.dps[v] = PersonDP(self.index, v, mine, self.pinned[v])
        return dp

    def price(
        self,
        v: int,
        priced: np.ndarray,
        shift_duals: np.ndarray,
        pi: np.ndarray,
        deadline: float,
    ) -> list[Column]:
        """New columns for the volunteer: the valid schedules the search meets with each shift
        worth its `priced` dual less its own cost, the PER_PRICING of least reduced cost at
        the master's own duals (`shift_duals`, `pi`) among those below -ENTER, each checked."""
        dp = self._dp(v)
        if dp is None:
            return []
        gains = priced[self.positions[v]] - self.own_cost[v]
        met: list[np.ndarray] = []
        plain = priced is shift_duals or np.array_equal(priced, shift_duals)
        if self._resources(v, dp) is not None:
            # Labelling where it applies; the day-by-day search only where it does not.
            floor = max(
                (float(gains[[self.where[v][s] for s in c.shifts]].sum()) for c in self.mine[v]),
                default=labelling.NEG,
            )
            if plain:
                floor = max(floor, ENTER - float(pi[v]))
            exact = self._labelled(v, dp, gains, floor, None)
            if exact is not None:
                return self._columns(v, dp, exact, shift_duals, pi)
        start = self.prices.get(v)
        passes = MAX_PASSES // 3 if start is not None else MAX_PASSES
        seed = self.seed + self.iterations
        found, prices = dp.search(gains, seed, deadline, start, POLISH, passes, collect=met)
        if found is None and start is not None:
            found, prices = dp.search(gains, seed, deadline, None, POLISH, MAX_PASSES, collect=met)
        self.prices[v] = prices if found is not None else None
        if found is not None:
            met.append(found)
        real = shift_duals[self.positions[v]] - self.own_cost[v]
        best = max((float(real[ids].sum()) for ids in met), default=-np.inf)
        if best + float(pi[v]) <= ENTER:
            # The search found no column: the exact search on the volunteer alone. From the
            # same start, Curtois Instance8's master was at 1,371 after 10 s with an exact
            # pricing from the first round and at 1,774 when it came in only once a whole
            # round of the search found nothing; Instance6's dive ended at 2,052 with it and
            # 2,250 without.
            floor = max((float(gains[ids].sum()) for ids in met), default=labelling.NEG)
            if plain:
                # Priced at the master's own duals: only a schedule worth more than this
                # enters, so the search need not look below it.
                floor = max(floor, ENTER - float(pi[v]))
            met.extend(self._exact_price(v, dp, gains, floor, deadline, prices))
        return self._columns(v, dp, met, shift_duals, pi)

    def _columns(
        self,
        v: int,
        dp: PersonDP,
        met: Sequence[np.ndarray],
        shift_duals: np.ndarray,
        pi: np.ndarray,
    ) -> list[Column]:
        """The PER_PRICING schedules of `met` (candidate ids) of least reduced cost at the
        master's duals among those below -ENTER and not yet columns, each checked."""
        if not met:
            return []
        real = shift_duals[self.positions[v]] - self.own_cost[v]
        ranked: dict[tuple[int, ...], float] = {}
        for ids in met:
            key = tuple(int(j) for j in np.sort(ids))
            if key not in ranked:
                ranked[key] = -float(real[list(key)].sum()) - float(pi[v])
        problem = self.index.problem
        volunteer = problem.volunteers[v]
        columns: list[Column] = []
        for key, reduced in sorted(ranked.items(), key=lambda item: item[1]):
            if reduced >= -ENTER or len(columns) >= PER_PRICING:
                break
            chosen = [int(dp.candidates[j]) for j in key]
            if (v, tuple(sorted(chosen))) in self.seen:
                continue
            if keeps_rules(problem, volunteer, [problem.shifts[s].id for s in chosen]):
                columns.append(self.column_of(v, chosen))
        return columns

    def _cp_model(self, v: int) -> tuple[cp_model.CpModel, list[cp_model.IntVar]]:
        """The volunteer's own rules as a CP-SAT model over their candidates (each shift wanted
        by nobody, room for them alone), without an objective."""
        found = self.models.get(v)
        if found is None:
            problem = self.index.problem
            volunteer = problem.volunteers[v]
            shifts = tuple(
                replace(problem.shifts[s], required=0, capacity=1, skills={})
                for s in self.positions[v].tolist()
            )
            ids = {s.id for s in shifts}
            single = replace(
                problem,
                volunteers=(replace(volunteer, requests=()),),
                shifts=shifts,
                pinned=tuple(
                    p for p in problem.pinned if p.volunteer == volunteer.id and p.shift in ids
                ),
                forbidden=(),
                previous=(),
            )
            rm = build_model(ProblemIndex.build(single), [[0]] * len(shifts))
            rm.model.clear_objective()
            found = (rm.model, [rm.variables.assign[(0, s)] for s in range(len(shifts))])
            self.models[v] = found
        return found

    def _exact_price(
        self,
        v: int,
        dp: PersonDP,
        gains: np.ndarray,
        floor: float,
        deadline: float,
        prices: Multipliers | None = None,
    ) -> list[np.ndarray]:
        """The volunteer's most valuable schedules worth more than `floor` (candidate ids):
        by labelling where it models the volunteer (one shift a day, whole resources), else
        by CP-SAT. Curtois Instance8, a volunteer at a time: 14 ms a call against CP-SAT's
        48; Instance12: 3.6 against 77."""
        found = self._labelled(v, dp, gains, floor, prices)
        return found if found is not None else self._cp_price(v, gains, deadline)

    def _resources(self, v: int, dp: PersonDP) -> labelling.Resources | None:
        """The volunteer's resources for labelling, None where it does not model them."""
        if v not in self.resources:
            exact = self.index.problem.rules.one_shift_per_day
            self.resources[v] = labelling.Resources.of(dp) if exact else None
        return self.resources[v]

    def _labelled(
        self, v: int, dp: PersonDP, gains: np.ndarray, floor: float, prices: Multipliers | None
    ) -> list[np.ndarray] | None:
        """Labelling's best schedules above `floor`, None where it does not apply or gave up."""
        resources = self._resources(v, dp)
        if resources is None:
            return None
        found = labelling.best_schedules(
            dp.layout(), resources, gains, floor, PER_PRICING, prices, self.warm.get(v)
        )
        self.warm[v] = found.multipliers
        return found.schedules

    def _cp_price(self, v: int, gains: np.ndarray, deadline: float) -> list[np.ndarray]:
        """The volunteer's most valuable schedule by CP-SAT (gains scaled to integers), and
        the improving ones met on the way, as candidate ids."""
        if not len(self.positions[v]) or time.monotonic() >= deadline:
            return []
        model, chosen = self._cp_model(v)
        weights = np.round(gains * CP_SCALE).astype(np.int64)
        model.clear_objective()
        model.maximize(cp_model.LinearExpr.weighted_sum(chosen, weights.tolist()))
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(
            0.01, min(CP_PRICE_S, deadline - time.monotonic())
        )
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = self.seed
        solver.parameters.cp_model_probing_level = 0  # 18 ms a volunteer where 27 with it
        met = _Schedules(chosen)
        status = solver.solve(model, met)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return []
        return [*met.found, np.flatnonzero([solver.value(x) for x in chosen])]

    def lower_bound(self, deadline: float) -> int | None:
        """A proven lower bound on every roster's objective, or None: the linear master's
        value plus each volunteer's least reduced cost at its duals (Lagrangian; zero where no
        schedule prices below zero), every volunteer priced exactly by labelling. The master
        need not have converged: the bound is as far below its value as columns are missing.
        Rounded up, as every objective term is a whole number."""
        duals = self.solve_lp()
        if duals is None or self.lp_value is None:
            return None
        shift_duals, pi = duals
        bound = self.lp_value
        for v in range(self.n_volunteers):
            if time.monotonic() >= deadline:
                return None
            dp = self._dp(v)
            if dp is None:
                return None
            real = shift_duals[self.positions[v]] - self.own_cost[v]
            found = self._labelled(v, dp, real, -float(pi[v]), None)
            if found is None:
                return None
            if found:
                bound -= float(real[found[0]].sum()) + float(pi[v])
        # GLOP's tolerances: its duals may be off by about 1e-7 per row.
        slack = 1e-6 * (len(self.cover_rows) + self.n_volunteers) + 1e-9 * abs(bound)
        return math.ceil(bound - slack)

    def reduced_cost(self, column: Column, shift_duals: np.ndarray, pi: np.ndarray) -> float:
        taken = np.asarray(column.shifts, dtype=np.int64)
        return float(column.cost - shift_duals[taken].sum() - pi[column.volunteer])

    def generate(
        self,
        deadline: float,
        skip: Collection[int] = (),
        rounds: int = 0,
        tail_after: float = TAIL_AFTER_S,
    ) -> int:
        """Column generation until a whole round of pricing (every volunteer not in `skip`
        once) finds no column of negative reduced cost at the master's own duals, or after
        `rounds` whole rounds (0: no limit), or when it tails off (TAIL_ROUNDS rounds gaining
        less than TAIL, once `tail_after` seconds have passed), or the deadline: the number of
        columns added. The master is re-solved between batches of volunteers priced, so each
        volunteer is priced at fresh duals."""
        added = 0
        centre: np.ndarray | None = None
        alpha = SMOOTHING
        order = [v for v in range(self.n_volunteers) if v not in skip]
        if not order:
            return 0
        chunk = max(1, min(CHUNK, len(order)))
        at = priced_count = 0
        next_round = 0  # priced_count at which the next whole round begins
        lp_s = per_volunteer = 0.0  # the last solve's time, a volunteer's pricing (averaged)
        quiet = 0  # volunteers priced in a row without a column entering
        starts: list[float] = []  # the master's value as each round began
        began = time.monotonic()
        while time.monotonic() < deadline and quiet < len(order):
            if rounds and priced_count >= rounds * len(order):
                break
            solved_at = time.monotonic()
            duals = self.solve_lp()
            lp_s = time.monotonic() - solved_at
            if duals is None or self.lp_value is None:
                break
            if priced_count >= next_round:
                next_round = priced_count + len(order)
                # A new round: stop when the last TAIL_ROUNDS gained too little (tailing off),
                # once the master has left its first value (the start is a degenerate vertex:
                # rounds of columns may enter before it moves).
                starts.append(self.lp_value)
                if (
                    time.monotonic() - began > tail_after
                    and len(starts) > TAIL_ROUNDS
                    and starts[-1 - TAIL_ROUNDS] < starts[0]
                    and starts[-1 - TAIL_ROUNDS] - self.lp_value
                    < TAIL * max(1.0, abs(self.lp_value))
                ):
                    self.tailed = self.tailed or not skip
                    break
            shift_duals, pi = duals
            self.iterations += 1
            priced = shift_duals if centre is None else alpha * centre + (1 - alpha) * shift_duals
            entered = 0
            # Price as long between two solves as a solve takes (at least CHUNK volunteers):
            # with fast pricing the master's solve is the dearer part (Curtois Instance12,
            # about 0.1-0.25 s a solve against 10 ms a volunteer).
            if per_volunteer > 0.0:
                chunk = max(CHUNK, min(MAX_CHUNK, round(LP_RATIO * lp_s / per_volunteer)))
            chunk = max(1, min(chunk, len(order)))
            if rounds:
                chunk = max(1, min(chunk, rounds * len(order) - priced_count))
            batch = [order[(at + i) % len(order)] for i in range(chunk)]
            at = (at + chunk) % len(order)
            priced_at = time.monotonic()
            priced_columns = self._price_all(batch, priced, shift_duals, pi, deadline)
            took = (time.monotonic() - priced_at) / len(batch)
            per_volunteer = took if per_volunteer == 0.0 else 0.5 * (per_volunteer + took)
            for columns in priced_columns:
                priced_count += 1
                found = sum(self.add(c) for c in columns)
                entered += found
                quiet = 0 if found else quiet + 1
            added += entered
            if entered:
                centre = priced
                alpha = SMOOTHING
            elif centre is not None and alpha > 0:
                alpha = 0.0  # mispriced: the plain duals next
                quiet = 0
        if quiet >= len(order) and not skip:
            self.converged = True
        return added

    def _price_all(
        self,
        batch: Sequence[int],
        priced: np.ndarray,
        shift_duals: np.ndarray,
        pi: np.ndarray,
        deadline: float,
    ) -> list[list[Column]]:
        """`price` for each volunteer of the batch, on `workers` threads; the columns in the
        batch's order. The master is not touched until every volunteer is priced, so the
        columns are the same as pricing one after the other."""
        if self.workers == 1 or len(batch) == 1:
            return [self.price(v, priced, shift_duals, pi, deadline) for v in batch]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pricing")
        return list(
            self._pool.map(lambda v: self.price(v, priced, shift_duals, pi, deadline), batch)
        )

    def close(self) -> None:
        """Let the pricing threads go (they are started on the first batch priced)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def support(self) -> set[tuple[int, int]]:
        """The (volunteer, shift) positions that some column of positive value in the linear
        master's solution takes: where the master would staff; the rest it leaves."""
        taken: set[tuple[int, int]] = set()
        if self.solve_lp() is None:  # columns may have entered since the last solve
            return taken
        for k, column in enumerate(self.columns):
            if self.lp_vars[k].solution_value() > SUPPORT_MIN:
                taken.update((column.volunteer, s) for s in column.shifts)
        return taken

    # ------------------------------------------------------------------ rosters

    def dive(self, deadline: float, perturb: int = 0) -> list[Column] | None:
        """A roster by diving in the linear master with pricing: fix the volunteers whose
        schedule is whole in the master's solution, and a DIVE_FIX share of the rest (the
        largest shares of one schedule), generate columns for the others until the master
        converges again (each step within its share of the time left), until every volunteer
        has a schedule; None past the deadline. The master's bounds are restored afterwards
        (and `lp_value` is the unfixed master's again), and the columns priced on the way stay.
        A `perturb` other than 0 ranks the shares with noise drawn from it (another dive).

        Converging again after each step is what makes the dive's roster good: Curtois
        Instance12 4,040 (its best known value) and Instance8 1,304, where one round of
        pricing per step gave 5,105 and 1,613-2,215."""
        chosen: dict[int, int] = {}
        closed: list[int] = []
        try:
            while len(chosen) < self.n_volunteers:
                if time.monotonic() >= deadline:
                    return None
                if chosen:
                    now = time.monotonic()
                    steps = _dive_steps(self.n_volunteers - len(chosen), DIVE_FIX)
                    self.generate(
                        now + (deadline - now) / steps,
                        skip=chosen,
                        rounds=DIVE_ROUNDS,
                        tail_after=DIVE_TAIL_AFTER_S,
                    )
                if self.lp.Solve() != pywraplp.Solver.OPTIMAL:
                    return None
                by_volunteer: list[list[int]] = [[] for _ in range(self.n_volunteers)]
                for k, column in enumerate(self.columns):
                    by_volunteer[column.volunteer].append(k)
                picks: list[tuple[float, int, int]] = []
                for v, ks in enumerate(by_volunteer):
                    if v not in chosen:
                        k = max(ks, key=lambda k: self.lp_vars[k].solution_value())
                        picks.append((self.lp_vars[k].solution_value(), v, k))
                if perturb:
                    # Another dive: the same shares, ranked with noise (whole ones still fixed).
                    rng = np.random.default_rng(self.seed * 7919 + perturb)
                    noise = 1.0 + DIVE_NOISE * rng.random(len(picks))
                    picks = [
                        (value if value > 0.99 else min(0.99, value * n), v, k)
                        for (value, v, k), n in zip(picks, noise, strict=True)
                    ]
                picks.sort(reverse=True)
                least = max(1, round(len(picks) * DIVE_FIX))
                fix = [(v, k) for i, (value, v, k) in enumerate(picks) if i < least or value > 0.99]
                for v, k in fix:
                    chosen[v] = k
                    for other in by_volunteer[v]:
                        if other != k:
                            self.lp_vars[other].SetUb(0.0)
                            closed.append(other)
        finally:
            for k in closed:
                self.lp_vars[k].SetUb(self.lp.infinity())
            self.solve_lp()  # the master's value over every column again, nothing fixed
        return [self.columns[chosen[v]] for v in range(self.n_volunteers)]

    def roster(self, columns: Sequence[Column]) -> tuple[Pair, ...]:
        problem = self.index.problem
        pairs = sorted((s, c.volunteer) for c in columns for s in c.shifts)
        return tuple(Pair(problem.volunteers[v].id, problem.shifts[s].id) for s, v in pairs)

    def integer(
        self,
        deadline: float,
        hint: Sequence[Column] = (),
        workers: int = 2,
        seed: int = 0,
    ) -> MasterResult | None:
        """The best roster made of the generated columns found by CP-SAT by the deadline."""
        model = cp_model.CpModel()
        chosen = [model.new_bool_var("") for _ in self.columns]
        by_volunteer: list[list[int]] = [[] for _ in range(self.n_volunteers)]
        on_shift: list[list[int]] = [[] for _ in range(len(self.cover.required))]
        for k, column in enumerate(self.columns):
            by_volunteer[column.volunteer].append(k)
            for s in column.shifts:
                on_shift[s].append(k)
        for ks in by_volunteer:
            if not ks:
                return None
            model.add_exactly_one(chosen[k] for k in ks)
        terms: list[tuple[int, cp_model.IntVar]] = [
            (column.cost, chosen[k]) for k, column in enumerate(self.columns) if column.cost
        ]
        hinted = {(c.volunteer, c.shifts) for c in hint}
        complete = len(hinted) == self.n_volunteers
        on = [(column.volunteer, column.shifts) in hinted for column in self.columns]
        required = self.cover.required
        for s, ks in enumerate(on_shift):
            count = cp_model.LinearExpr.sum([chosen[k] for k in ks])
            room = int(self.room[s])
            need = int(required[s])
            under = model.new_int_var(0, need, "")
            over = model.new_int_var(0, max(0, min(room, len(ks)) - need), "")
            model.add(count + under - over == need)
            if len(ks) > room:
                model.add(count <= room)
            terms.append((round(self.cover.under[s]), under))
            terms.append((round(self.cover.over[s]), over))
            if complete:
                staffed = sum(on[k] for k in ks)
                model.add_hint(under, max(0, need - staffed))
                model.add_hint(over, max(0, staffed - need))
        model.minimize(
            cp_model.LinearExpr.weighted_sum([v for _, v in terms], [c for c, _ in terms])
        )
        if complete:
            for k in range(len(self.columns)):
                model.add_hint(chosen[k], on[k])
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, deadline - time.monotonic())
        solver.parameters.num_workers = max(1, workers)
        solver.parameters.random_seed = seed
        status = solver.solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        roster = self.roster([c for k, c in enumerate(self.columns) if solver.value(chosen[k])])
        return MasterResult(
            roster, sum(score(self.index, roster).values()), status == cp_model.OPTIMAL
        )


def _dive_steps(free: int, share: float) -> int:
    """Steps a dive takes to fix `free` volunteers fixing a `share` of them (at least one) a
    step, none whole in the master."""
    steps = 0
    while free > 0:
        free -= max(1, round(free * share))
        steps += 1
    return max(1, steps)


def price_and_branch(
    index: ProblemIndex,
    eligible: Sequence[Sequence[int]],
    start: Sequence[Pair],
    deadline: float,
    seed: int = 0,
    workers: int = 2,
    integer_share: float = 0.3,
    integer_master: bool = True,
) -> tuple[MasterResult | None, ColumnGeneration]:
    """Columns from the valid roster `start` and pricing until the master converges, tails
    off or `deadline` less the rest's share; a dive with pricing in half of what is left (all of
    it without the integer master); then
    the integer master hinted with the better of `start` and the dive's roster, for at most
    INTEGER_S. Returns as soon as that is done (the caller's search gets the rest). Without
    `integer_master`, the dive's roster is the result (the caller searches a wider space that
    holds the integer master's)."""
    generation = ColumnGeneration(index, eligible, seed, workers)
    try:
        return _price_and_branch(generation, start, deadline, integer_share, integer_master)
    finally:
        generation.close()


def _price_and_branch(
    generation: ColumnGeneration,
    start: Sequence[Pair],
    deadline: float,
    integer_share: float,
    integer_master: bool,
) -> tuple[MasterResult | None, ColumnGeneration]:
    index = generation.index
    hint = generation.add_roster(start)
    now = time.monotonic()
    generation.generate(now + (deadline - now) * (1.0 - integer_share))
    now = time.monotonic()
    if not integer_master:
        generation.bound = generation.lower_bound(now + (deadline - now) * BOUND_SHARE)
        return _dives(generation, deadline), generation
    dived = generation.dive(now + (deadline - now) * 0.5)
    if dived is not None:
        roster = generation.roster(dived)
        objective = generation.dive_objective = sum(score(index, roster).values())
        if objective < sum(score(index, start).values()):
            hint = dived
    until = min(deadline, time.monotonic() + INTEGER_S)
    return generation.integer(until, hint, generation.workers, generation.seed), generation


def _dives(generation: ColumnGeneration, deadline: float) -> MasterResult | None:
    """The best roster of dives until the deadline: the first may take all of it, each further
    one (its ranking perturbed, over the columns the earlier ones added) as long as the first
    took. Where the first is quick, the others land elsewhere: Curtois Instance8's dives end on
    plateaus 100 apart (1,314, 1,400, 1,503 from three seeds), one missing person each."""
    index = generation.index
    best: MasterResult | None = None
    began = time.monotonic()
    took = 0.0
    attempt = 0
    while True:
        dived = generation.dive(
            min(deadline, began + took * DIVE_AGAIN) if attempt else deadline, attempt
        )
        if attempt == 0:
            took = time.monotonic() - began
        if dived is not None:
            roster = generation.roster(dived)
            objective = sum(score(index, roster).values())
            if best is None or objective < best.objective:
                best = MasterResult(roster, objective, False)
                generation.dive_objective = objective
        attempt += 1
        began = time.monotonic()
        if best is None or took <= 0.0 or deadline - began < took * DIVE_AGAIN:
            return best
        if generation.bound is not None and best.objective <= generation.bound:
            return best  # proven optimal: no dive can do better
