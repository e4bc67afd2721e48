"""Curtois & Qu instances converted to Problems keep the benchmark's rules and objective."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduling.checker import check
from scheduling.cli import main
from scheduling.curtois import parse_curtois, read_curtois, shift_id
from scheduling.problem import (
    Pair,
    ProblemError,
    problem_from_dict,
    problem_to_dict,
    read_solution,
)

SMALL = """\
# two types, three staff, one week
SECTION_HORIZON
7

SECTION_SHIFTS
# ShiftID, Length in mins, Shifts which cannot follow this shift | separated
E,480,
L,600,E

SECTION_STAFF
A,E=5|L=2,2880,960,4,2,2,1
B,E=0|L=7,4200,0,5,1,1,2
C,E=7|L=7,4200,0,7,1,1,1

SECTION_DAYS_OFF
A,5,6
B,0

SECTION_SHIFT_ON_REQUESTS
A,0,E,2
C,3,L,5

SECTION_SHIFT_OFF_REQUESTS
B,2,L,3

SECTION_COVER
# Day, ShiftID, Requirement, Weight for under, Weight for over
0,E,2,100,1
0,L,1,100,1
1,E,1,100,1
2,L,1,50,4
"""


def test_small_instance_structure() -> None:
    problem = parse_curtois(SMALL, "small")
    assert problem.horizon_days == 7
    assert problem.horizon_start.weekday() == 0
    assert [v.id for v in problem.volunteers] == ["A", "B", "C"]
    assert len(problem.shifts) == 14
    assert problem.rules.one_shift_per_day
    assert problem.rules.min_rest_minutes == 0
    assert problem.rules.forbidden_successions == (("L", "E"),)
    late = {s.id: s for s in problem.shifts}[shift_id(2, "L")]
    assert (late.minutes, late.kind, late.required, late.capacity) == (600, "L", 1, 3)
    assert (late.under_weight, late.over_weight) == (50, 4)
    free = {s.id: s for s in problem.shifts}[shift_id(6, "E")]
    assert (free.required, free.under_weight, free.over_weight) == (0, 0, 0)
    limits_a = problem.volunteers[0].limits
    assert dict(limits_a.max_shifts_by_kind) == {"E": 5, "L": 2}
    assert (limits_a.max_minutes, limits_a.min_minutes) == (2880, 960)
    assert (limits_a.max_consecutive_days, limits_a.min_consecutive_days) == (4, 2)
    assert (limits_a.min_consecutive_days_off, limits_a.max_weekends) == (2, 1)
    assert [problem.day_index(w.start) for w in problem.volunteers[0].unavailable] == [5, 6]
    assert [(r.shift, r.want, r.weight) for r in problem.volunteers[1].requests] == [
        (shift_id(2, "L"), False, 3)
    ]


def test_small_instance_objective_matches_the_benchmark_definition() -> None:
    problem = parse_curtois(SMALL, "small")
    roster = [
        Pair("A", shift_id(0, "E")),
        Pair("C", shift_id(0, "E")),
        Pair("B", shift_id(0, "L")),  # B is off on day 0: a hard violation
        Pair("B", shift_id(2, "L")),
        Pair("C", shift_id(2, "L")),
    ]
    report = check(problem, roster)
    assert [v.rule for v in report.violations if v.volunteer == "B"] == ["unavailable"]
    # Cover: day 1 E short by one (100); day 2 L one over (4).
    # Requests: A got day 0 E (0); C wanted day 3 L (5); B did not want day 2 L (3).
    assert report.parts["under"] == 100
    assert report.parts["over"] == 4
    assert report.parts["requests"] == 8
    assert report.objective == 112


def test_hard_rules_of_the_benchmark_are_enforced_by_the_checker() -> None:
    problem = parse_curtois(SMALL, "small")

    def broken(roster: list[Pair], who: str) -> list[str]:
        return [v.rule for v in check(problem, roster).violations if v.volunteer == who]

    late_then_early = [Pair("C", shift_id(1, "L")), Pair("C", shift_id(2, "E"))]
    assert broken(late_then_early, "C") == ["forbidden_succession"]
    two_a_day = [Pair("C", shift_id(1, "L")), Pair("C", shift_id(1, "E"))]
    # Shifts of one day all start at midnight, so two of them also overlap.
    assert broken(two_a_day, "C") == ["overlap", "one_shift_per_day"]
    b_early = [Pair("B", shift_id(1, "E"))]
    assert broken(b_early, "B") == ["max_shifts_by_kind"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (SMALL.replace("E,480,", "E,abc,"), "line 7"),
        (SMALL.replace("A,0,E,2", "Z,0,E,2"), "line 20"),
        (SMALL.replace("0,L,1,100,1", "0,X,1,100,1"), "line 29"),
        (SMALL.replace("2,L,1,50,4", "9,L,1,50,4"), "line 31"),
        (SMALL.replace("SECTION_COVER", "SECTION_NOPE"), "line 26"),
        ("SECTION_HORIZON\n0\n", "SECTION_HORIZON"),
    ],
)
def test_bad_instance_names_the_line(text: str, where: str) -> None:
    with pytest.raises(ProblemError) as error:
        parse_curtois(text)
    assert error.value.path == where


@pytest.mark.parametrize(
    ("number", "days", "staff", "types", "cover_sum", "successions"),
    [(1, 14, 8, 1, 71, 0), (2, 14, 14, 2, 108, 1), (3, 14, 20, 3, 154, 3)],
)
def test_published_instances_convert(
    cases_dir: Path,
    number: int,
    days: int,
    staff: int,
    types: int,
    cover_sum: int,
    successions: int,
) -> None:
    problem = read_curtois(str(cases_dir / "curtois" / f"Instance{number}.txt"))
    assert problem.horizon_days == days
    assert len(problem.volunteers) == staff
    assert len({s.kind for s in problem.shifts}) == types
    assert len(problem.shifts) == days * types
    assert sum(s.required for s in problem.shifts) == cover_sum
    assert len(problem.rules.forbidden_successions) == successions
    # Converted problems survive the JSON round trip unchanged.
    assert problem_from_dict(json.loads(json.dumps(problem_to_dict(problem)))) == problem


def test_saved_instance1_case_matches_the_converter(cases_dir: Path) -> None:
    saved = json.loads((cases_dir / "curtois_instance1.problem.json").read_text("utf-8"))
    converted = read_curtois(str(cases_dir / "curtois" / "Instance1.txt"))
    assert problem_from_dict(saved) == converted


def test_convert_command_writes_problem_json(cases_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "i1.json"
    status = main(["convert-curtois", str(cases_dir / "curtois" / "Instance1.txt"), "-o", str(out)])
    assert status == 0
    document: dict[str, Any] = json.loads(out.read_text("utf-8"))
    assert document["format"] == "roster-problem/1"
    assert len(document["volunteers"]) == 8


def test_convert_command_reports_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("SECTION_HORIZON\nfourteen\n", encoding="utf-8")
    assert main(["convert-curtois", str(bad)]) == 2
    assert "bad.txt: line 2: horizon 'fourteen' is not a whole number" in capsys.readouterr().err


def test_saved_instance1_roster_scores_the_published_optimum(cases_dir: Path) -> None:
    # A roster found by the solver and saved; the checker's score equals the published
    # optimum 607, so the conversion and the checker agree with the benchmark's objective.
    problem = read_curtois(str(cases_dir / "curtois" / "Instance1.txt"))
    solution = read_solution(str(cases_dir / "curtois_instance1.solution.json"))
    report = check(problem, solution.assignments)
    assert report.ok
    assert report.objective == 607
    assert report.parts["under"] + report.parts["over"] + report.parts["requests"] == 607
