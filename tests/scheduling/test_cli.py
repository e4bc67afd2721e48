"""`python -m scheduling`: exit codes, messages, and no tracebacks on bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduling.cli import main
from scheduling.problem import Limits, Problem, Volunteer, problem_to_dict


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def problem(kit: Any) -> Problem:
    shifts = [kit.shift("s1", 0, 8, 4), kit.shift("s2", 0, 10, 4), kit.shift("s3", 1, 8, 4)]
    volunteers = [Volunteer("a", limits=Limits(max_shifts=2)), Volunteer("b")]
    result: Problem = kit.problem(volunteers, shifts)
    return result


def write(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def solution_doc(*items: tuple[str, str], objective: int | None = None) -> dict[str, Any]:
    return {
        "format": "roster-solution/1",
        "status": "feasible",
        "objective": objective,
        "assignments": [{"volunteer": v, "shift": s} for v, s in items],
    }


def test_check_clean_roster_exits_0(tmp_path: Path, problem: Problem) -> None:
    problem_path = write(tmp_path / "p.json", problem_to_dict(problem))
    solution_path = write(tmp_path / "s.json", solution_doc(("a", "s1"), ("b", "s2"), ("a", "s3")))
    status, out, _ = run("check", problem_path, solution_path)
    assert status == 0
    assert "violations: 0" in out
    assert "objective: 0" in out
    assert "  under: 0" in out


def test_check_lists_every_violation_and_exits_1(tmp_path: Path, problem: Problem) -> None:
    problem_path = write(tmp_path / "p.json", problem_to_dict(problem))
    solution_path = write(
        tmp_path / "s.json", solution_doc(("a", "s1"), ("a", "s2"), ("a", "s3"), objective=5)
    )
    status, out, _ = run("check", problem_path, solution_path)
    assert status == 1
    assert "VIOLATION overlap volunteer=a shifts=s1,s2" in out
    assert "VIOLATION max_shifts volunteer=a" in out
    assert "violations: 2" in out
    assert "note: the solution claims objective 5" in out


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    status, _, err = run("check", str(tmp_path / "nope.json"), str(tmp_path / "nope2.json"))
    assert status == 2
    assert "nope.json: cannot read" in err


def test_check_malformed_json_exits_2(tmp_path: Path, problem: Problem) -> None:
    problem_path = write(tmp_path / "p.json", problem_to_dict(problem))
    solution_path = tmp_path / "s.json"
    solution_path.write_text('{"assignments": [', encoding="utf-8")
    status, _, err = run("check", problem_path, str(solution_path))
    assert status == 2
    assert "not valid JSON" in err
    assert "line 1" in err


def test_check_bad_field_is_named(tmp_path: Path, problem: Problem) -> None:
    document = problem_to_dict(problem)
    document["volunteers"][1]["limits"] = {"max_minutes": -3}
    problem_path = write(tmp_path / "p.json", document)
    solution_path = write(tmp_path / "s.json", solution_doc())
    status, _, err = run("check", problem_path, solution_path)
    assert status == 2
    assert "volunteers[1].limits.max_minutes" in err
    assert "Traceback" not in err


def test_check_unknown_ids_in_solution_are_violations(tmp_path: Path, problem: Problem) -> None:
    problem_path = write(tmp_path / "p.json", problem_to_dict(problem))
    solution_path = write(tmp_path / "s.json", solution_doc(("zed", "s1")))
    status, out, _ = run("check", problem_path, solution_path)
    assert status == 1
    assert "unknown_volunteer" in out


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("generate", "--volunteers", "zero")
    assert exit_info.value.code == 2


def test_module_entry_point_runs_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduling", "check", str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "cannot read" in result.stderr


def test_check_reports_missing_pinned_pair(tmp_path: Path, problem: Problem) -> None:
    document = problem_to_dict(problem)
    document["pinned"] = [{"volunteer": "b", "shift": "s3"}]
    problem_path = write(tmp_path / "p.json", document)
    solution_path = write(tmp_path / "s.json", solution_doc(("a", "s3")))
    status, out, _ = run("check", problem_path, solution_path)
    assert status == 1
    assert "VIOLATION pinned volunteer=b shifts=s3" in out


def test_solve_writes_a_checked_solution_and_reports_progress(
    tmp_path: Path, problem: Problem
) -> None:
    problem_path = write(tmp_path / "p.json", problem_to_dict(problem))
    out = tmp_path / "solution.json"
    status, _, err = run("solve", problem_path, "--time-limit", "2", "--seed", "1", "-o", str(out))
    assert status == 0
    assert "best objective" in err
    assert "status optimal" in err
    status, check_out, _ = run("check", problem_path, str(out))
    assert status == 0
    assert "objective: 0" in check_out


def test_solve_bad_problem_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"timezone": "Mars/Olympus", "horizon": {"start": "2026-12-07", "days": 7}}')
    status, _, err = run("solve", str(bad))
    assert status == 2
    assert "timezone: unknown time zone 'Mars/Olympus'" in err


def test_generate_writes_a_problem(tmp_path: Path) -> None:
    out = tmp_path / "week.json"
    status, _, _ = run("generate", "--volunteers", "50", "--seed", "3", "-o", str(out))
    assert status == 0
    document = json.loads(out.read_text("utf-8"))
    assert len(document["volunteers"]) == 50
    assert document["timezone"] == "Asia/Shanghai"
