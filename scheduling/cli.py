"""`python -m scheduling`: solve, check, convert and generate roster problems.

Bad input never produces a traceback: a missing file, malformed JSON or a field that does not
follow ROSTER_FORMAT.md prints one line naming the file or field and exits with status 2. A
roster that breaks a hard rule exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TextIO

from scheduling.problem import (
    Problem,
    ProblemError,
    Solution,
    problem_to_dict,
    read_problem,
    read_solution,
    solution_to_dict,
)

if TYPE_CHECKING:
    from scheduling.solver import ProgressEvent

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """Input the command cannot use; the message is shown as is."""


def _load(reader: Callable[[str], Any], path: str) -> Any:
    try:
        return reader(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except ProblemError as exc:
        where = f"{path}: {exc.path}" if exc.path else path
        raise InputError(f"{where}: {exc.message}") from None


def _write_json(document: dict[str, Any], out: str | None, stdout: TextIO) -> None:
    text = json.dumps(document, ensure_ascii=False) + "\n"
    if out is None:
        stdout.write(text)
        return
    try:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(f"{out}: cannot write: {exc.strerror or exc}") from None


def _progress_printer(stderr: TextIO) -> Callable[[ProgressEvent], None]:
    def report(event: ProgressEvent) -> None:
        part = f"  part {event.part}" if event.part else ""
        stderr.write(
            f"best objective {event.objective}  bound {event.bound}"
            f"  elapsed {event.wall_s:.1f}s{part}\n"
        )
        stderr.flush()

    return report


def _cmd_solve(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    problem: Problem = _load(read_problem, args.problem)
    # Imported here so that check/convert/generate work without the solver's dependencies
    # being loaded (CP-SAT start-up is not free).
    from scheduling.solver import SolveOptions, solve

    options = SolveOptions(
        time_limit_s=args.time_limit,
        workers=args.workers,
        seed=args.seed,
        progress=_progress_printer(stderr),
    )
    solution = solve(problem, options)
    stderr.write(
        f"status {solution.status}  objective {solution.objective}  bound {solution.bound}\n"
    )
    _write_json(solution_to_dict(solution), args.output, stdout)
    return EXIT_OK


def format_check(problem: Problem, solution: Solution) -> tuple[list[str], bool]:
    """The lines `check` prints, and whether the roster keeps every hard rule."""
    from scheduling.checker import check

    report = check(problem, solution.assignments)
    lines = [
        f"VIOLATION {v.rule}"
        + (f" volunteer={v.volunteer}" if v.volunteer else "")
        + (f" shifts={','.join(v.shifts)}" if v.shifts else "")
        + f": {v.message}"
        for v in report.violations
    ]
    lines.append(f"violations: {len(report.violations)}")
    lines.append(f"objective: {report.objective}")
    lines.extend(f"  {name}: {value}" for name, value in report.parts.items())
    if solution.objective is not None and solution.objective != report.objective:
        lines.append(f"note: the solution claims objective {solution.objective}")
    return lines, report.ok


def _cmd_check(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    problem: Problem = _load(read_problem, args.problem)
    solution: Solution = _load(read_solution, args.solution)
    lines, ok = format_check(problem, solution)
    stdout.write("\n".join(lines) + "\n")
    return EXIT_OK if ok else EXIT_VIOLATION


def _cmd_convert_curtois(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from scheduling.curtois import read_curtois

    problem: Problem = _load(read_curtois, args.instance)
    _write_json(problem_to_dict(problem), args.output, stdout)
    return EXIT_OK


def _cmd_generate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from scheduling.generator import generate_federation_week

    problem = generate_federation_week(
        args.volunteers, seed=args.seed, days=args.days, start=args.start
    )
    _write_json(problem_to_dict(problem), args.output, stdout)
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scheduling", description="Volunteer Hub roster solver tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    solve = commands.add_parser("solve", help="solve a problem; progress goes to stderr")
    solve.add_argument("problem", metavar="PROBLEM.json")
    solve.add_argument("--time-limit", type=_positive_float, default=10.0, metavar="SECONDS")
    solve.add_argument("--workers", type=_positive_int, default=2, metavar="N")
    solve.add_argument("--seed", type=int, default=0, metavar="K")
    solve.add_argument("-o", "--output", metavar="SOLUTION.json")
    solve.set_defaults(handler=_cmd_solve)

    check = commands.add_parser("check", help="list hard-rule violations, recompute objective")
    check.add_argument("problem", metavar="PROBLEM.json")
    check.add_argument("solution", metavar="SOLUTION.json")
    check.set_defaults(handler=_cmd_check)

    convert = commands.add_parser("convert-curtois", help="convert a Curtois & Qu instance")
    convert.add_argument("instance", metavar="InstanceN.txt")
    convert.add_argument("-o", "--output", metavar="PROBLEM.json")
    convert.set_defaults(handler=_cmd_convert_curtois)

    generate = commands.add_parser("generate", help="generate a federation patrol week")
    generate.add_argument("--volunteers", type=_positive_int, required=True, metavar="N")
    generate.add_argument("--days", type=_positive_int, default=7)
    generate.add_argument("--seed", type=int, default=0, metavar="K")
    generate.add_argument("--start", type=_date, default=date(2026, 12, 7), metavar="YYYY-MM-DD")
    generate.add_argument("-o", "--output", metavar="PROBLEM.json")
    generate.set_defaults(handler=_cmd_generate)
    return parser


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one command; returns the exit status (argparse usage errors exit 2 themselves)."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args, out, err)
    except InputError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    except ProblemError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    return status
