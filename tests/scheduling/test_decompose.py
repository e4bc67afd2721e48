"""Independent parts: linked only through volunteers who may take shifts on both sides."""

from __future__ import annotations

from typing import Any

from scheduling.checker import check
from scheduling.decompose import components, slice_eligible, slice_problem
from scheduling.eligibility import eligible_positions
from scheduling.problem import Location, Pair, Request, Rules, Volunteer
from scheduling.solver import SolveOptions, solve

EAST, WEST = Location(31.2, 121.9), Location(31.2, 120.9)


def two_towns(kit: Any, bridge: bool) -> Any:
    volunteers = [
        Volunteer("e1", location=EAST, requests=(Request("w1", True, 4),)),
        Volunteer("w1", location=WEST),
        Volunteer("nowhere", location=Location(40.0, 100.0)),
    ]
    if bridge:
        volunteers.append(Volunteer("both"))  # no location: may go anywhere
    shifts = [
        kit.shift("e1", location=EAST),
        kit.shift("w1", location=WEST),
        kit.shift("lonely", location=Location(0.0, 0.0)),
    ]
    return kit.problem(
        volunteers, shifts, rules=Rules(max_distance_km=20), pinned=[Pair("e1", "e1")]
    )


def test_towns_apart_are_separate_parts(kit: Any) -> None:
    problem = two_towns(kit, bridge=False)
    eligible = eligible_positions(problem)
    parts = components(problem, eligible)
    assert sorted((c.volunteers, c.shifts) for c in parts) == [((0,), (0,)), ((1,), (1,))]
    east = next(c for c in parts if c.shifts == (0,))
    sliced = slice_problem(problem, east)
    assert [v.id for v in sliced.volunteers] == ["e1"]
    assert sliced.volunteers[0].requests == ()  # the west request is a fixed cost elsewhere
    assert sliced.pinned == (Pair("e1", "e1"),)
    assert slice_eligible(east, eligible) == [[0]]


def test_a_volunteer_who_reaches_both_links_them(kit: Any) -> None:
    problem = two_towns(kit, bridge=True)
    parts = components(problem, eligible_positions(problem))
    assert len(parts) == 1
    assert parts[0].volunteers == (0, 1, 3)


def test_solving_by_parts_matches_the_checker(kit: Any) -> None:
    problem = two_towns(kit, bridge=False)
    solution = solve(problem, SolveOptions(time_limit_s=2, workers=1))
    report = check(problem, solution.assignments)
    assert report.ok
    assert solution.objective == report.objective
    # The lonely shift is missed and e1's wish for the west shift cannot be met.
    assert solution.objective_parts == {**report.parts}
    assert report.parts["under"] == 1000 and report.parts["requests"] == 4
    assert solution.status == "optimal" and solution.bound == solution.objective
    assert solution.stats["components"] == 2
