"""Exact pricing by labelling (scheduling/labelling.py): on random single volunteers with every
resource rule, its best schedule is an exhaustive search's optimum and passes the checker, the
floor and the multipliers only ever drop what cannot beat it, and on Curtois volunteers it
agrees with CP-SAT; column generation falls back to CP-SAT where labelling gives up."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from scheduling import colgen, labelling
from scheduling.checker import check
from scheduling.curtois import read_curtois
from scheduling.eligibility import eligible_positions
from scheduling.model.data import ProblemIndex
from scheduling.person_dp import Multipliers, PersonDP, applies, keeps_rules
from scheduling.problem import Limits, Pair, Problem, Rules, Volunteer
from tests.scheduling.test_colgen import start_roster
from tests.scheduling.test_person_dp import (
    KINDS,
    exhaustive_best,
    make_problem,
    make_shift,
    one_person,
)


def _person(problem: Problem) -> tuple[PersonDP, list[int]] | None:
    index = ProblemIndex.build(problem)
    mine = [s for s, people in enumerate(eligible_positions(problem)) if people]
    if not applies(index, mine, []):
        return None
    return PersonDP(index, 0, mine, []), mine


def _valid(problem: Problem, mine: list[int], ids: np.ndarray) -> bool:
    return check(problem, [Pair("v", problem.shifts[mine[j]].id) for j in ids]).ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    one_person(with_totals=True),
    st.lists(st.floats(0.0, 5.0), min_size=5, max_size=5),
)
def test_the_best_schedule_is_the_exhaustive_optimum_whatever_the_multipliers(
    case: tuple[Problem, list[float]], prices: list[float]
) -> None:
    problem, gains_by_shift = case
    built = _person(problem)
    if built is None:
        return  # clashes two days apart: the search (and labelling) stand aside
    dp, mine = built
    resources = labelling.Resources.of(dp)
    assert resources is not None
    gains = np.array([gains_by_shift[s] for s in mine])
    best = exhaustive_best(problem, mine, gains.tolist())
    # Multipliers steer the bounds only: any (non-negative) prices give the same optimum.
    multipliers = Multipliers(
        prices[0] / 480, {name: prices[1] for name in resources.names}, prices[2]
    )
    warm = np.array([prices[3], *([prices[4]] * len(resources.cap)), prices[2]])
    for given_prices, given_warm in ((None, None), (multipliers, None), (None, warm)):
        found = labelling.best_schedules(
            dp.layout(), resources, gains, most=3, prices=given_prices, warm=given_warm
        )
        assert found.schedules is not None
        if best is None:
            assert found.schedules == []
            continue
        assert found.schedules, "a valid schedule exists and was not found"
        values = [float(gains[ids].sum()) for ids in found.schedules]
        assert values[0] == best
        assert values == sorted(values, reverse=True)
        assert all(_valid(problem, mine, ids) for ids in found.schedules)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_person(with_totals=True))
def test_the_floor_drops_only_schedules_not_worth_more(case: tuple[Problem, list[float]]) -> None:
    problem, gains_by_shift = case
    built = _person(problem)
    if built is None:
        return
    dp, mine = built
    resources = labelling.Resources.of(dp)
    assert resources is not None
    gains = np.array([gains_by_shift[s] for s in mine])
    best = exhaustive_best(problem, mine, gains.tolist())
    if best is None:
        return
    below = labelling.best_schedules(dp.layout(), resources, gains, floor=best - 0.5).schedules
    assert below is not None and below and float(gains[below[0]].sum()) == best
    at = labelling.best_schedules(dp.layout(), resources, gains, floor=best).schedules
    assert at == []


@st.composite
def weeks_of_one_person(draw: st.DrawFn) -> tuple[Problem, list[float]]:
    """One volunteer over 8-21 days (two or three weekends), one or two kinds a day, every
    resource rule drawn; per shift a gain in -3..9."""
    days = draw(st.integers(8, 21))
    shifts = [
        make_shift(f"d{d}{kind}", d, KINDS[kind][0], KINDS[kind][1], kind=kind)
        for d in range(days)
        for kind in sorted(draw(st.sets(st.sampled_from("el"), min_size=1, max_size=2)))
    ]
    small = st.none() | st.integers(1, 4)
    limits = Limits(
        max_consecutive_days=draw(small),
        min_consecutive_days=draw(small),
        min_consecutive_days_off=draw(small),
        max_minutes=draw(st.none() | st.integers(2, 14).map(lambda n: n * 480)),
        min_minutes=draw(st.none() | st.integers(0, 6).map(lambda n: n * 480)),
        max_shifts=draw(st.none() | st.integers(1, 12)),
        max_shifts_by_kind=draw(
            st.dictionaries(st.sampled_from("el"), st.integers(0, 8), max_size=2)
        ),
        max_weekends=draw(st.none() | st.integers(0, 2)),
        max_minutes_per_week=draw(st.none() | st.integers(1, 5).map(lambda n: n * 480)),
    )
    problem = make_problem(
        [Volunteer("v", limits=limits)],
        shifts,
        days=days,
        rules=Rules(one_shift_per_day=True, forbidden_successions=(("l", "e"),)),
    )
    gains = draw(st.lists(st.integers(-3, 9), min_size=len(shifts), max_size=len(shifts)))
    return problem, [float(g) for g in gains]


def cp_sat_best(problem: Problem, gains: np.ndarray) -> float | None:
    """The volunteer's most valuable schedule by CP-SAT over the model of every rule."""
    generation = colgen.ColumnGeneration(ProblemIndex.build(problem), eligible_positions(problem))
    model, chosen = generation._cp_model(0)
    model.maximize(sum(int(g) * x for g, x in zip(gains.tolist(), chosen, strict=True)))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        return None
    assert status == cp_model.OPTIMAL
    return float(round(solver.objective_value))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weeks_of_one_person())
def test_over_several_weekends_the_best_schedule_is_cp_sats_optimum(
    case: tuple[Problem, list[float]],
) -> None:
    problem, gains_by_shift = case
    built = _person(problem)
    assert built is not None
    dp, mine = built
    resources = labelling.Resources.of(dp)
    assert resources is not None
    gains = np.array([gains_by_shift[s] for s in mine])
    best = cp_sat_best(problem, gains)
    found = labelling.best_schedules(dp.layout(), resources, gains, most=2).schedules
    assert found is not None
    if best is None:
        assert found == []
        return
    assert found and float(gains[found[0]].sum()) == best
    assert all(_valid(problem, mine, ids) for ids in found)


def test_curtois_volunteers_get_cp_sats_optimum(cases_dir: Path) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / "Instance2.txt"))
    index = ProblemIndex.build(problem)
    generation = colgen.ColumnGeneration(index, eligible_positions(problem))
    rng = np.random.default_rng(7)
    for v in range(0, generation.n_volunteers, 2):
        dp = generation._dp(v)
        assert dp is not None
        resources = labelling.Resources.of(dp)
        assert resources is not None
        gains = np.round(rng.normal(30, 60, len(dp.candidates)) - generation.own_cost[v], 3)
        found = labelling.best_schedules(dp.layout(), resources, gains).schedules
        assert found
        ids = [problem.shifts[int(dp.candidates[j])].id for j in found[0]]
        assert keeps_rules(problem, problem.volunteers[v], ids)
        by_cp_sat = generation._cp_price(v, gains, time.monotonic() + 20)
        assert by_cp_sat
        assert float(gains[found[0]].sum()) == pytest.approx(
            max(float(gains[ids].sum()) for ids in by_cp_sat), abs=1e-6
        )


def test_column_generation_prices_by_cp_sat_where_labelling_gives_up(
    cases_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / "Instance1.txt"))
    index = ProblemIndex.build(problem)
    eligible = eligible_positions(problem)
    start = start_roster(problem)
    by_cp_sat: list[int] = []
    cp_price = colgen.ColumnGeneration._cp_price

    def counted(self: colgen.ColumnGeneration, v: int, *args: object) -> list[np.ndarray]:
        by_cp_sat.append(v)
        return cp_price(self, v, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(colgen.ColumnGeneration, "_cp_price", counted)
    monkeypatch.setattr(labelling, "MOST_LABELS", 1)  # gives up at once
    # ... and the day-by-day search finds nothing either.
    monkeypatch.setattr(PersonDP, "search", lambda self, *a, **k: (None, Multipliers()))
    generation = colgen.ColumnGeneration(index, eligible)
    started = len(generation.add_roster(start))
    generation.generate(time.monotonic() + 10, rounds=1)
    assert sorted(set(by_cp_sat)) == list(range(generation.n_volunteers))
    assert len(generation.columns) > started
    for column in generation.columns:
        volunteer = problem.volunteers[column.volunteer]
        assert keeps_rules(problem, volunteer, [problem.shifts[s].id for s in column.shifts])
