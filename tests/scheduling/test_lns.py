"""The large-neighbourhood search, the part flow around it, and the incremental roster's rule
tests that the greedy and the LNS rely on."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from scheduling import part
from scheduling.checker import check
from scheduling.eligibility import eligible_positions
from scheduling.greedy import greedy_result
from scheduling.lns import complete_hint, fix, improve
from scheduling.model.build import RosterModel, build_model
from scheduling.model.data import ProblemIndex
from scheduling.model.roster import Roster
from scheduling.problem import Limits, Pair, Problem, Request, Rules, Volunteer


def month_problem(kit: Any, people: int = 6, days: int = 14, seed: int = 0) -> Problem:
    """A small nurse-rostering month: cover per day and kind, requests, stretch rules."""
    rng = random.Random(seed)
    shifts = [
        kit.shift(f"d{d}{kind}", d, hour, 8, kind=kind, required=rng.randint(1, 2))
        for d in range(days)
        for kind, hour in (("e", 6), ("l", 14))
    ]
    volunteers = [
        Volunteer(
            f"v{i}",
            limits=Limits(
                max_consecutive_days=4, min_consecutive_days=2, min_consecutive_days_off=2
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


def test_improve_never_worsens_and_reports_the_roster_it_returns(kit: Any) -> None:
    problem = month_problem(kit)
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    rm = build_model(index, eligible)
    # Start from the empty roster: valid, since no minimum can force anyone to work.
    values = {literal.index: 0 for literal in rm.variables.assign.values()}
    empty = check(problem, []).objective
    result = improve(rm, values, empty, time.monotonic() + 2.0, seed=1, workers=1)
    assert result.rounds > 0 and result.objective < empty
    chosen = [
        Pair(problem.volunteers[v].id, problem.shifts[s].id)
        for (v, s), literal in rm.variables.assign.items()
        if result.values[literal.index]
    ]
    report = check(problem, chosen)
    assert report.ok, report.violations
    assert report.objective == result.objective


def greedy_start(
    kit: Any, seed: int
) -> tuple[Problem, RosterModel, tuple[Pair, ...], dict[int, int], int]:
    """A month's problem, its model, the greedy roster, and that roster's values and score."""
    problem = month_problem(kit, seed=seed)
    eligible = eligible_positions(problem)
    rm = build_model(ProblemIndex.build(problem), eligible)
    start = greedy_result(problem, eligible).assignments
    values, objective = part._hint_values(rm, start)
    return problem, rm, start, values, objective


def test_hint_objective_is_the_model_objective_of_the_fixed_roster(kit: Any) -> None:
    from ortools.sat.python import cp_model

    problem, rm, start, values, objective = greedy_start(kit, seed=3)
    fixed = rm.model.clone()
    for var_index, value in values.items():
        fix(fixed, var_index, value)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    status = solver.solve(fixed)
    if status == cp_model.INFEASIBLE:
        pytest.fail("the greedy start breaks a model rule")
    assert round(solver.objective_value) == objective == check(problem, start).objective


def test_complete_hint_hints_every_variable_at_the_rosters_own_values(kit: Any) -> None:
    """The completed hint is a whole solution: CP-SAT held to it finds the roster's score; a
    roster that breaks a rule leaves the hints as they were."""
    from ortools.sat.python import cp_model

    problem, rm, start, values, objective = greedy_start(kit, seed=4)
    model = rm.model.clone()
    model.clear_hints()
    assert complete_hint(model, values, 5.0)
    hint = model.proto.solution_hint
    assert list(hint.vars) == list(range(len(model.proto.variables)))
    assert all(hint.values[i] == value for i, value in values.items())
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.fix_variables_to_their_hinted_value = True
    assert solver.solve(model) == cp_model.OPTIMAL
    assert round(solver.objective_value) == objective == check(problem, start).objective
    # Everyone on every shift they may take breaks one-shift-a-day: no completion.
    everyone = {i: 1 for i in values}
    partial = rm.model.clone()
    partial.clear_hints()
    first = next(iter(values))
    hinted = partial.proto.solution_hint
    hinted.vars.append(first)
    hinted.values.append(1)
    assert not complete_hint(partial, everyone, 5.0)
    assert list(partial.proto.solution_hint.vars) == [first]


def test_large_part_without_a_valid_start_is_not_modelled_whole(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part too big to model gave up only after building the whole model (about 150 s on
    Curtois Instance24 for a 10 s limit); it must return at once instead."""
    problem = month_problem(kit)
    eligible = eligible_positions(problem)
    monkeypatch.setattr(part, "LARGE_PART", 1)
    monkeypatch.setattr(part, "sequential_roster", lambda *args, **kwargs: None)

    def no_build(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole model was built")

    monkeypatch.setattr(part, "build_model", no_build)
    task = part.PartTask(0, problem, eligible, (), False, 2.0, 1, 0, True)
    assert part.solve_part(task).status == "unknown"


def test_roster_sees_a_long_shift_of_an_earlier_day(kit: Any) -> None:
    shifts = [kit.shift("long", 0, 8, 60), kit.shift("later", 2, 10, 4), kit.shift("free", 4)]
    problem = kit.problem([Volunteer("a")], shifts)
    roster = Roster(ProblemIndex.build(problem))
    roster.assign(0, 0)
    assert not roster.can_take(0, 1)  # starts while the 60 h shift still runs
    assert roster.can_take(0, 2)


def test_roster_forbidden_succession_both_ways(kit: Any) -> None:
    shifts = [
        kit.shift("n0", 0, 22, 8, kind="night"),
        kit.shift("e1", 1, 10, 4, kind="early"),
        kit.shift("n1", 1, 22, 8, kind="night"),
        kit.shift("e2", 2, 12, 4, kind="early"),
    ]
    problem = kit.problem(
        [Volunteer("a")], shifts, rules=Rules(forbidden_successions=(("night", "early"),))
    )
    roster = Roster(ProblemIndex.build(problem))
    roster.assign(0, 0)
    assert not roster.can_take(0, 1)
    roster.unassign(0, 0)
    roster.assign(0, 3)  # early on day 2: a night on day 1 may not precede it
    assert not roster.can_take(0, 2)
    assert roster.can_take(0, 0)


def test_filled_places_are_kept_only_where_cover_dominates(kit: Any) -> None:
    from scheduling.problem import Weights

    shifts = [kit.shift(f"s{d}", d, 8, 8, required=1) for d in range(3)]
    people = [Volunteer("a", requests=(Request("s0", False, 5),)), Volunteer("b")]
    start = (Pair("a", "s0"), Pair("b", "s1"))  # s2 left empty
    for weights, expected in ((Weights(under=10**9), True), (Weights(under=100), False)):
        problem = kit.problem(people, shifts, weights=weights)
        rm = build_model(ProblemIndex.build(problem), eligible_positions(problem))
        assert part._keep_filled(rm, start) is expected
    # With the cap the solver still fills every place it can and keeps every rule.
    problem = kit.problem(people, shifts, weights=Weights(under=10**9))
    task = part.PartTask(0, problem, eligible_positions(problem), start, True, 2.0, 1, 0, True)
    result = part.solve_part(task)
    report = check(problem, result.assignments)
    assert report.ok and report.parts["under"] == 0 and report.parts["requests"] == 0


def test_volunteer_by_volunteer_build_with_a_hint_keeps_every_rule(kit: Any) -> None:
    from scheduling.lns import sequential_roster

    problem = month_problem(kit, seed=5)
    eligible = eligible_positions(problem)
    start = greedy_result(problem, eligible).assignments
    built = sequential_roster(problem, eligible, time.monotonic() + 10, workers=1, hint=start)
    assert built is not None
    assert check(problem, built).ok


def test_cluster_round_solves_only_within_what_is_left_before_the_deadline(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round's solve had its full round limit however long building the cluster took, so
    the search ran past the part's deadline (Timefold XL: 10.29 s for a 10 s limit)."""
    from ortools.sat.python import cp_model

    from scheduling import slices

    granted: list[tuple[float, float]] = []

    class Recording(cp_model.CpSolver):
        def solve(self, model: Any, *args: Any) -> Any:
            granted.append((self.parameters.max_time_in_seconds, time.monotonic()))
            return super().solve(model, *args)

    monkeypatch.setattr(slices.cp_model, "CpSolver", Recording)
    problem = month_problem(kit)
    start = greedy_result(problem).assignments
    search = slices._SliceSearch.create(problem, eligible_positions(problem), start, 0)
    deadline = time.monotonic() + 0.2
    search.round(6, 5.0, 1, deadline)
    (limit, at), *_ = granted
    assert limit <= max(0.01, deadline - at + 1e-3)


def test_explaining_an_infeasible_part_stays_within_the_part_limit(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The explanation solve had a fixed 5 s whatever the whole-model solve had used."""
    limits: list[float] = []
    real = part._solver

    def recording(time_limit: float, workers: int, seed: int) -> Any:
        limits.append(time_limit)
        return real(time_limit, workers, seed)

    monkeypatch.setattr(part, "_solver", recording)
    shifts = [kit.shift("s0", 0, 8, 8)]
    people = [Volunteer("a", limits=Limits(min_minutes=960))]  # 16 h from one 8 h shift
    problem = kit.problem(people, shifts)
    task = part.PartTask(0, problem, eligible_positions(problem), (), False, 1.0, 1, 0, True)
    result = part.solve_part(task)
    assert result.status == "infeasible" and result.conflicts
    assert len(limits) == 2 and limits[1] < 1.0  # what the first solve left, not a fixed limit


def test_improve_stops_once_the_roster_meets_a_proven_bound(kit: Any) -> None:
    """A roster at a proven lower bound cannot be bettered: no round is spent on it (Timefold
    SMALL ran its whole limit after reaching the bound), and one short of it the search runs."""
    problem = month_problem(kit)
    rm = build_model(ProblemIndex.build(problem), eligible_positions(problem))
    values = {literal.index: 0 for literal in rm.variables.assign.values()}
    empty = check(problem, []).objective
    at_bound = improve(
        rm, values, empty, time.monotonic() + 30.0, seed=1, workers=1, proven_bound=empty
    )
    assert at_bound.rounds == 0 and at_bound.objective == empty
    below = improve(
        rm, values, empty, time.monotonic() + 1.0, seed=1, workers=1, proven_bound=empty - 1
    )
    assert below.rounds > 0
