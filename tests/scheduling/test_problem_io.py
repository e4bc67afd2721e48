"""The JSON form of Problem and Solution: round trips, defaults, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scheduling.problem import (
    Pair,
    ProblemError,
    Shortfall,
    Solution,
    load_json,
    problem_from_dict,
    problem_to_dict,
    read_problem,
    solution_from_dict,
    solution_to_dict,
)

MINIMAL: dict[str, Any] = {
    "format": "roster-problem/1",
    "timezone": "Asia/Shanghai",
    "horizon": {"start": "2026-12-07", "days": 7},
    "volunteers": [
        {
            "id": "v1",
            "skills": ["first_aid"],
            "location": {"lat": 29.8, "lon": 121.55},
            "unavailable": [
                {"start": "2026-12-08T00:00:00+08:00", "end": "2026-12-09T00:00:00+08:00"}
            ],
            "limits": {"max_minutes_per_week": 600, "max_shifts_by_kind": {"night": 2}},
            "requests": [{"shift": "s1", "want": True, "weight": 5}],
            "nickname": "ignored",
        },
        {"id": "v2"},
    ],
    "shifts": [
        {
            "id": "s1",
            "start": "2026-12-07T19:00:00+08:00",
            "end": "2026-12-07T23:00:00+08:00",
            "kind": "night",
            "required": 2,
            "skills": {"leader": 1},
        }
    ],
    "rules": {"min_rest_minutes": 480, "one_shift_per_day": True, "max_distance_km": 8},
    "weights": {"under": 1000, "fairness": 1},
    "pinned": [{"volunteer": "v1", "shift": "s1"}],
    "meta": {"note": "kept"},
}


def test_defaults_follow_the_format() -> None:
    problem = problem_from_dict(MINIMAL)
    shift = problem.shifts[0]
    assert shift.capacity is None and shift.max_people == 2
    assert problem.under_weight(shift) == 1000
    assert problem.over_weight(shift) == 0
    assert shift.minutes == 240
    assert problem.rules.weekend_days == (5, 6)
    assert problem.volunteers[1].limits.max_minutes is None
    assert problem.pinned == (Pair("v1", "s1"),)
    assert problem.day_index(shift.start) == 0
    assert problem.meta == {"note": "kept"}


def test_problem_round_trip() -> None:
    problem = problem_from_dict(MINIMAL)
    again = problem_from_dict(json.loads(json.dumps(problem_to_dict(problem))))
    assert again == problem


def test_read_problem_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(MINIMAL), encoding="utf-8")
    assert read_problem(str(path)) == problem_from_dict(MINIMAL)


def test_solution_round_trip() -> None:
    solution = Solution(
        status="feasible",
        assignments=(Pair("v1", "s1"),),
        objective=12,
        bound=10,
        objective_parts={"under": 12},
        shortfalls=(Shortfall("s1", 1, {"leader": 1}, "nobody else can take it"),),
        conflicts=("v2 min_minutes",),
        stats={"wall_s": 0.5},
    )
    assert solution_from_dict(json.loads(json.dumps(solution_to_dict(solution)))) == solution


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(MINIMAL)
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["timezone"], "Nowhere/City", "timezone"),
        (["horizon", "days"], 0, "horizon.days"),
        (["volunteers", 0, "limits", "max_minutes"], "ten", "volunteers[0].limits.max_minutes"),
        (["volunteers", 0, "location", "lat"], 95, "volunteers[0].location.lat"),
        (["volunteers", 1, "id"], "v1", "volunteers[1].id"),
        (["volunteers", 0, "requests", 0, "shift"], "nope", "volunteers[0].requests[0].shift"),
        (["shifts", 0, "end"], "2026-12-07T18:00:00+08:00", "shifts[0].end"),
        (["shifts", 0, "start"], "2026-12-07T19:00:00", "shifts[0].start"),
        (["shifts", 0, "capacity"], 1, "shifts[0].capacity"),
        (["rules", "forbidden_successions"], [["night"]], "rules.forbidden_successions[0]"),
        (["pinned", 0, "volunteer"], "ghost", "pinned[0].volunteer"),
        (["format"], "roster-problem/9", "format"),
    ],
)
def test_bad_field_is_named(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(ProblemError) as error:
        problem_from_dict(broken(path, value))
    assert error.value.path == field


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(ProblemError) as error:
        load_json('{\n  "a": [1, 2,\n}', "p.json")
    assert "p.json is not valid JSON" in error.value.message
    assert "line 3" in error.value.message


def test_solution_with_bad_assignment_is_named() -> None:
    with pytest.raises(ProblemError) as error:
        solution_from_dict({"assignments": [{"volunteer": "v1"}]})
    assert error.value.path == "assignments[0].shift"
