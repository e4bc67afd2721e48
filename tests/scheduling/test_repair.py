"""fill_by_moves: empty places filled through chains of moves, never at the cost of a rule."""

from __future__ import annotations

from typing import Any

from scheduling.checker import check
from scheduling.eligibility import eligible_positions
from scheduling.problem import Limits, Pair, Rules, Volunteer
from scheduling.repair import fill_by_moves

ONE_A_DAY = Rules(one_shift_per_day=True)


def test_a_chain_of_two_moves_fills_the_empty_shift(kit: Any) -> None:
    # a can take only "morning"; b is on "morning" but can also take "evening"; c is on
    # "evening" and is the only other one for "night": c→night, b→evening, a→morning.
    shifts = [
        kit.shift("morning", 0, 6, 4),
        kit.shift("evening", 0, 14, 4),
        kit.shift("night", 0, 20, 4),
    ]
    volunteers = [Volunteer("a"), Volunteer("b"), Volunteer("c")]
    forbidden = [Pair("a", "evening"), Pair("a", "night"), Pair("b", "night")]
    problem = kit.problem(volunteers, shifts, rules=ONE_A_DAY, forbidden=forbidden)
    start = kit.pairs(("b", "morning"), ("c", "evening"))
    repaired = fill_by_moves(problem, eligible_positions(problem), start)
    assert set(repaired) == set(kit.pairs(("a", "morning"), ("b", "evening"), ("c", "night")))
    assert check(problem, repaired).ok


def test_no_chain_leaves_the_roster_as_it_was(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a")], [kit.shift("s1", 0, 8), kit.shift("s2", 0, 14)], rules=ONE_A_DAY
    )
    start = kit.pairs(("a", "s1"))
    assert fill_by_moves(problem, eligible_positions(problem), start) == tuple(start)


def test_a_move_that_breaks_another_limit_is_rejected(kit: Any) -> None:
    # Nothing clashes in time, but b's minutes cap (not modelled by the moves) forbids day 1.
    shifts = [kit.shift("d0", 0, 8, 4), kit.shift("d1", 1, 8, 4)]
    problem = kit.problem([Volunteer("b", limits=Limits(max_minutes=240))], shifts, rules=ONE_A_DAY)
    start = kit.pairs(("b", "d0"))
    repaired = fill_by_moves(problem, eligible_positions(problem), start)
    assert repaired == tuple(start)
    assert check(problem, repaired).ok
