"""Price and branch (scheduling/colgen.py): the linear master's duals price whole-horizon
schedules, the integer master's roster keeps every rule and is scored as the checker scores
it, and problems outside its scope are left alone."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ortools.sat.python import cp_model

from scheduling import colgen, part
from scheduling.checker import check
from scheduling.curtois import read_curtois
from scheduling.eligibility import eligible_positions
from scheduling.lns import sequential_roster
from scheduling.model.build import build_model
from scheduling.model.data import ProblemIndex
from scheduling.person_dp import keeps_rules
from scheduling.problem import Limits, Problem, Request, Rules, Volunteer, Weights
from scheduling.solver import SolveOptions, solve


def small_problem(kit: Any, people: int = 4, days: int = 7, seed: int = 0) -> Problem:
    """Cover per day and kind (missing people dear, extra ones cheap), requests, stretch rules
    and a minimum of minutes that the empty schedule breaks."""
    rng = random.Random(seed)
    shifts = [
        kit.shift(
            f"d{d}{kind}",
            d,
            hour,
            8,
            kind=kind,
            required=rng.randint(1, 2),
            capacity=3,
            under_weight=rng.choice([50, 100]),
            over_weight=rng.choice([1, 5]),
        )
        for d in range(days)
        for kind, hour in (("e", 6), ("l", 14))
    ]
    volunteers = [
        Volunteer(
            f"v{i}",
            limits=Limits(
                max_consecutive_days=4,
                min_consecutive_days=2,
                min_consecutive_days_off=2,
                min_minutes=2 * 480,
            ),
            requests=tuple(
                Request(f"d{rng.randrange(days)}{rng.choice('el')}", rng.random() < 0.5, 3)
                for _ in range(3)
            ),
        )
        for i in range(people)
    ]
    return kit.problem(
        volunteers,
        shifts,
        days=days,
        rules=Rules(one_shift_per_day=True, forbidden_successions=(("l", "e"),)),
    )


def cp_sat_optimum(problem: Problem) -> int:
    index = ProblemIndex.build(problem)
    rm = build_model(index, eligible_positions(problem))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 2
    solver.parameters.max_time_in_seconds = 20
    assert solver.solve(rm.model) == cp_model.OPTIMAL
    return round(solver.objective_value)


def start_roster(problem: Problem) -> Any:
    # A generous deadline: it only bounds the build, and a loaded CI machine is slow.
    built = sequential_roster(problem, eligible_positions(problem), time.monotonic() + 30)
    assert built is not None and check(problem, built).ok
    return built


def test_small_problem_reaches_the_cp_sat_optimum_with_a_valid_roster(kit: Any) -> None:
    for seed in range(3):
        problem = small_problem(kit, seed=seed)
        index = ProblemIndex.build(problem)
        eligible = eligible_positions(problem)
        assert colgen.applies(index, eligible)
        start = start_roster(problem)
        result, generation = colgen.price_and_branch(
            index, eligible, start, time.monotonic() + 3.0, seed=seed, workers=2
        )
        assert result is not None
        report = check(problem, result.pairs)
        assert report.ok, report.violations
        assert report.objective == result.objective == cp_sat_optimum(problem)
        assert generation.lp_value is not None
        assert generation.lp_value <= result.objective + 1e-6


def test_the_masters_bound_holds_before_and_after_convergence(kit: Any) -> None:
    """The Lagrangian bound is never above the optimum: from the start's columns alone (far
    from converged), after a round, and converged, where it meets the master's value."""
    for seed in range(3):
        problem = small_problem(kit, seed=seed)
        optimum = cp_sat_optimum(problem)
        generation = colgen.ColumnGeneration(
            ProblemIndex.build(problem), eligible_positions(problem)
        )
        generation.add_roster(start_roster(problem))
        bounds = [generation.lower_bound(time.monotonic() + 10)]
        generation.generate(time.monotonic() + 10, rounds=1)
        bounds.append(generation.lower_bound(time.monotonic() + 10))
        generation.generate(time.monotonic() + 10)
        assert generation.converged and generation.lp_value is not None
        bounds.append(generation.lower_bound(time.monotonic() + 10))
        assert all(b is not None and b <= optimum for b in bounds), (bounds, optimum)
        assert bounds[-1] == math.ceil(generation.lp_value - 1e-6)


def test_no_bound_where_pricing_is_not_exact(kit: Any) -> None:
    """Without one shift a day the search (a heuristic) prices, so no bound is claimed."""
    problem = small_problem(kit, seed=1)
    loose = replace(problem, rules=replace(problem.rules, one_shift_per_day=False))
    index = ProblemIndex.build(loose)
    eligible = eligible_positions(loose)
    assert colgen.applies(index, eligible)
    generation = colgen.ColumnGeneration(index, eligible)
    generation.add_roster(start_roster(loose))
    generation.generate(time.monotonic() + 5)
    assert generation.lower_bound(time.monotonic() + 10) is None


def test_curtois_instance2_is_proven_optimal(cases_dir: Path) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / "Instance2.txt"))
    solution = solve(problem, SolveOptions(time_limit_s=20, workers=2))
    assert check(problem, solution.assignments).ok
    # 828 is the best known value (../shared/bench/curtois); the master's bound proves it.
    assert (solution.status, solution.objective, solution.bound) == ("optimal", 828, 828)


def test_start_columns_price_to_zero_and_every_column_keeps_the_rules(kit: Any) -> None:
    """The start roster's own columns have reduced cost 0 when they are all there is (each
    volunteer's only column is basic), so the dual signs are the ones pricing assumes."""
    problem = small_problem(kit, seed=5)
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    generation = colgen.ColumnGeneration(index, eligible)
    columns = generation.add_roster(start_roster(problem))
    duals = generation.solve_lp()
    assert duals is not None
    shift_duals, pi = duals
    for column in columns:
        assert abs(generation.reduced_cost(column, shift_duals, pi)) < 1e-6
    # The LP over the start's columns alone is the start's own score.
    assert generation.lp_value == check(problem, start_roster(problem)).objective
    generation.generate(time.monotonic() + 2.0)
    assert generation.lp_value is not None and len(generation.columns) > len(columns)
    for column in generation.columns:
        volunteer = problem.volunteers[column.volunteer]
        ids = [problem.shifts[s].id for s in column.shifts]
        assert keeps_rules(problem, volunteer, ids)
    shift_duals, pi = generation.solve_lp() or (np.zeros(0), np.zeros(0))
    # At the end every column in the master prices at or above zero.
    assert min(generation.reduced_cost(c, shift_duals, pi) for c in generation.columns) > -1e-6


def test_pricing_on_two_threads_gives_the_columns_of_pricing_one_by_one(kit: Any) -> None:
    """Volunteers of a batch are priced side by side, and the master is only touched once all
    are priced: the same columns, in the same order, as pricing one after the other."""
    problem = small_problem(kit, people=8, seed=2)
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    start = start_roster(problem)
    found = []
    for workers in (1, 2):
        generation = colgen.ColumnGeneration(index, eligible, seed=3, workers=workers)
        generation.add_roster(start)
        duals = generation.solve_lp()
        assert duals is not None
        shift_duals, pi = duals
        batch = list(range(len(problem.volunteers)))
        try:
            columns = generation._price_all(
                batch, shift_duals, shift_duals, pi, time.monotonic() + 30
            )
        finally:
            generation.close()
        assert generation._pool is None
        found.append(columns)
    assert found[0] == found[1]
    assert sum(len(columns) for columns in found[0]) > 0


def test_fairness_and_weighted_skills_are_out_of_scope(kit: Any) -> None:
    problem = small_problem(kit)
    index = ProblemIndex.build(problem)
    assert colgen.applies(index, eligible_positions(problem))
    fair = Problem(
        **{
            **{f: getattr(problem, f) for f in Problem.__dataclass_fields__},
            "weights": Weights(fairness=1),
            "volunteers": tuple(
                Volunteer(v.id, limits=v.limits, target_minutes=960) for v in problem.volunteers
            ),
        }
    )
    assert not colgen.applies(ProblemIndex.build(fair), eligible_positions(fair))
    skilled_shifts = tuple(
        kit.shift(s.id, (s.start - kit.at(0)).days, s.start.hour, 8, kind=s.kind, skills={"x": 1})
        for s in problem.shifts
    )
    for weight, expected in ((500, False), (0, True)):
        skilled = Problem(
            **{
                **{f: getattr(problem, f) for f in Problem.__dataclass_fields__},
                "shifts": skilled_shifts,
                "weights": Weights(skill_under=weight),
            }
        )
        assert colgen.applies(ProblemIndex.build(skilled), eligible_positions(skilled)) is expected


def test_curtois_instance2_is_no_worse_than_its_start(cases_dir: Path) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / "Instance2.txt"))
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    assert colgen.applies(index, eligible)
    start = start_roster(problem)
    before = check(problem, start).objective
    result, generation = colgen.price_and_branch(
        index, eligible, start, time.monotonic() + 4.0, workers=2
    )
    assert result is not None
    report = check(problem, result.pairs)
    assert report.ok, report.violations
    assert report.objective == result.objective <= before
    assert generation.lp_value is not None and generation.lp_value <= result.objective + 1e-6


def test_support_is_the_masters_own_after_columns_enter_since_its_last_solve(kit: Any) -> None:
    """Columns entering after the last solve left GLOP without a solution, so every value read
    0 and the support came out empty (the support round then fixed every assignment the
    incumbent did not make)."""
    problem = small_problem(kit, seed=2)
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    generation = colgen.ColumnGeneration(index, eligible)
    generation.add_roster(start_roster(problem))
    generation.generate(time.monotonic() + 2.0)
    generation.solve_lp()
    extra = sequential_roster(problem, eligible, time.monotonic() + 30, seed=7)
    assert extra is not None
    generation.add_roster(extra)  # no solve since
    support = generation.support()
    used = [
        column
        for k, column in enumerate(generation.columns)
        if generation.lp_vars[k].solution_value() > colgen.SUPPORT_MIN
    ]
    assert used and support == {(c.volunteer, s) for c in used for s in c.shifts}
    assert all(v in eligible[s] for v, s in support)


def test_the_support_round_is_valid_and_no_worse_than_the_master_it_follows(
    cases_dir: Path,
) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / "Instance2.txt"))
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    start = start_roster(problem)
    result, generation = colgen.price_and_branch(
        index, eligible, start, time.monotonic() + 3.0, workers=2
    )
    assert result is not None
    rm = build_model(index, eligible)
    values, objective = part._hint_values(rm, result.pairs)
    task = part.PartTask(0, problem, eligible, start, True, 5.0, 2, 0, True)
    better, found = part._support_round(rm, values, objective, generation.support(), 3.0, task)
    roster = part._pairs(rm, better)
    report = check(problem, roster)
    assert report.ok, report.violations
    assert report.objective == found <= objective
    # Whatever it staffs, the master or the incumbent staffed.
    taken = {(index.volunteer_pos[p.volunteer], index.shift_pos[p.shift]) for p in roster}
    mine = {(index.volunteer_pos[p.volunteer], index.shift_pos[p.shift]) for p in result.pairs}
    assert taken <= generation.support() | mine


def test_without_the_integer_master_the_result_is_the_dives_valid_roster(kit: Any) -> None:
    problem = small_problem(kit, people=5, seed=4)
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    result, generation = colgen.price_and_branch(
        index, eligible, start_roster(problem), time.monotonic() + 3.0, integer_master=False
    )
    assert result is not None and not result.optimal
    report = check(problem, result.pairs)
    assert report.ok, report.violations
    assert report.objective == result.objective == generation.dive_objective


def test_without_the_integer_master_dives_repeat_and_the_best_roster_is_kept(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick dives leave time for more, each ranked with other noise: every one gives a valid
    roster, and the result is the best of them."""
    problem = small_problem(kit, people=5, seed=2)
    index = ProblemIndex.build(problem)
    dives: list[tuple[int, int]] = []
    dive = colgen.ColumnGeneration.dive

    def recorded(
        self: colgen.ColumnGeneration, deadline: float, perturb: int = 0
    ) -> list[colgen.Column] | None:
        found = dive(self, deadline, perturb)
        assert found is not None
        roster = self.roster(found)
        report = check(problem, roster)
        assert report.ok, report.violations
        dives.append((perturb, report.objective))
        return found

    monkeypatch.setattr(colgen.ColumnGeneration, "dive", recorded)
    # No bound: a roster meeting it would end the dives (the next test).
    monkeypatch.setattr(colgen.ColumnGeneration, "lower_bound", lambda self, deadline: None)
    result, generation = colgen.price_and_branch(
        index,
        eligible_positions(problem),
        start_roster(problem),
        time.monotonic() + 3.0,
        integer_master=False,
    )
    assert len(dives) > 1 and [p for p, _ in dives] == list(range(len(dives)))
    assert result is not None
    assert result.objective == generation.dive_objective == min(o for _, o in dives)
    assert check(problem, result.pairs).objective == result.objective


def test_dives_stop_at_a_roster_that_meets_the_proven_bound(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = small_problem(kit, people=5, seed=2)
    dives: list[int] = []
    dive = colgen.ColumnGeneration.dive

    def recorded(
        self: colgen.ColumnGeneration, deadline: float, perturb: int = 0
    ) -> list[colgen.Column] | None:
        dives.append(perturb)
        return dive(self, deadline, perturb)

    monkeypatch.setattr(colgen.ColumnGeneration, "dive", recorded)
    result, generation = colgen.price_and_branch(
        ProblemIndex.build(problem),
        eligible_positions(problem),
        start_roster(problem),
        time.monotonic() + 3.0,
        integer_master=False,
    )
    assert result is not None and generation.bound is not None
    assert result.objective == generation.bound == cp_sat_optimum(problem)
    assert dives == [0]


def test_dive_steps_count_the_fixing_of_a_share_at_least_one_a_step() -> None:
    assert colgen._dive_steps(0, 0.15) == 1
    assert colgen._dive_steps(1, 0.15) == 1
    assert colgen._dive_steps(10, 0.15) == 9  # 10 -> 8, then one at a time
    assert colgen._dive_steps(10, 0.5) == 4  # 10 -> 5 -> 3 -> 1 -> 0


def test_a_part_prices_only_when_its_master_can_converge_in_its_time(cases_dir: Path) -> None:
    """Curtois Instance12 (292,656 pair-days) priced at 10 s ended 5% worse than without: the
    gate is pair-days per second of the part's limit."""
    problem = read_curtois(str(cases_dir / "curtois" / "Instance2.txt"))
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    n_vars = sum(len(people) for people in eligible)
    pair_days = n_vars * problem.horizon_days
    enough = pair_days / part.COLGEN_PAIR_DAYS_PER_S
    for limit, use_lns, expected in (
        (enough * 1.1, True, True),
        (enough * 0.9, True, False),
        (enough * 1.1, False, False),
    ):
        task = part.PartTask(0, problem, eligible, (), False, limit, 2, 0, use_lns)
        assert part._prices(task, index, n_vars) is expected
