"""max_fillable_slots: an upper bound on fillable head-count slots, tight on simple cases."""

from __future__ import annotations

from itertools import product
from typing import Any

from scheduling.checker import check
from scheduling.maxflow import max_fillable_slots
from scheduling.problem import Limits, Pair, Rules, Volunteer


def best_by_enumeration(problem: Any) -> int:
    """The most slots any roster keeping the hard rules fills, by trying every roster."""
    options = [(v.id, s.id) for v in problem.volunteers for s in problem.shifts]
    best = 0
    for chosen in product((False, True), repeat=len(options)):
        roster = [Pair(v, s) for (v, s), on in zip(options, chosen, strict=True) if on]
        if check(problem, roster).ok:
            filled = sum(
                min(s.required, sum(1 for p in roster if p.shift == s.id)) for s in problem.shifts
            )
            best = max(best, filled)
    return best


def test_bounded_by_required_and_people(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, required=3), kit.shift("s2", 1, required=1)]
    problem = kit.problem([Volunteer("a"), Volunteer("b")], shifts)
    eligible = {"s1": ["a", "b"], "s2": ["a", "b"]}
    assert max_fillable_slots(problem, eligible) == 3


def test_one_shift_per_day_limits_each_person_to_one_slot_a_day(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, 8, 2), kit.shift("s2", 0, 14, 2), kit.shift("s3", 1, 8, 2)]
    eligible = {s.id: ["a"] for s in shifts}
    free = kit.problem([Volunteer("a")], shifts)
    assert max_fillable_slots(free, eligible) == 3
    daily = kit.problem([Volunteer("a")], shifts, rules=Rules(one_shift_per_day=True))
    assert max_fillable_slots(daily, eligible) == 2


def test_limits_cap_a_volunteer(kit: Any) -> None:
    shifts = [kit.shift(f"s{d}", d, 8, 4, kind="night" if d % 2 else "day") for d in range(6)]
    eligible = {s.id: ["a"] for s in shifts}

    def bound(limits: Limits) -> int:
        return max_fillable_slots(kit.problem([Volunteer("a", limits=limits)], shifts), eligible)

    assert bound(Limits()) == 6
    assert bound(Limits(max_shifts=2)) == 2
    assert bound(Limits(max_minutes=3 * 240 + 10)) == 3
    assert bound(Limits(max_shifts_by_kind={"night": 1, "day": 0})) == 1
    assert bound(Limits(max_minutes_per_week=240)) == 1


def test_computes_eligibility_when_not_given(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, required=2)]
    problem = kit.problem([Volunteer("a"), Volunteer("b")], shifts, forbidden=[Pair("b", "s1")])
    assert max_fillable_slots(problem) == 1


def test_never_below_the_best_roster(kit: Any) -> None:
    shifts = [
        kit.shift("s1", 0, 8, 4, required=2),
        kit.shift("s2", 0, 10, 4, required=1),
        kit.shift("s3", 1, 8, 4, required=2),
    ]
    volunteers = [Volunteer("a", limits=Limits(max_shifts=1)), Volunteer("b"), Volunteer("c")]
    eligible = {"s1": ["a", "b"], "s2": ["b", "c"], "s3": ["a", "b", "c"]}
    forbidden = [Pair(v.id, s.id) for s in shifts for v in volunteers if v.id not in eligible[s.id]]
    problem = kit.problem(
        volunteers, shifts, rules=Rules(one_shift_per_day=True), forbidden=forbidden
    )
    bound = max_fillable_slots(problem, eligible)
    best = best_by_enumeration(problem)
    assert bound >= best
    # Every hard rule here is one the flow models, so the bound is exact.
    assert bound == best == 5


def test_empty_problem(kit: Any) -> None:
    assert max_fillable_slots(kit.problem([], []), {}) == 0
