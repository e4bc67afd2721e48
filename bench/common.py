"""Shared pieces of the benchmark harnesses: argument parsing, tables, results, solving."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scheduling.problem import Problem, Solution

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The published instances live outside the repository; a CI machine can point elsewhere.
DATA_DIR = Path(os.environ.get("VOLUNTEER_HUB_BENCH_DATA", "/work/shared/bench"))


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_ints(text: str) -> list[int]:
    """'1-3,7' → [1, 2, 3, 7]."""
    numbers: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        first = int(low)
        last = int(high) if high else first
        if last < first:
            raise ValueError(f"range {part!r} runs backwards")
        numbers.extend(range(first, last + 1))
    return numbers


def parse_floats(text: str) -> list[float]:
    return [float(p) for p in text.split(",") if p.strip()]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def write_results(name: str, data: Any) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def progress_logger(label: str) -> Callable[[Any], None]:
    def report(event: Any) -> None:
        log(
            f"  {label}: best {event.objective}  bound {event.bound}  "
            f"{event.wall_s:.1f}s" + (f"  part {event.part}" if event.part else "")
        )

    return report


def solve_timed(
    problem: Problem, time_limit_s: float, workers: int, seed: int, label: str
) -> tuple[Solution, float]:
    """Solve with the CP-SAT solver (imported here: it is the costly part to load)."""
    from scheduling.solver import SolveOptions, solve

    options = SolveOptions(
        time_limit_s=time_limit_s, workers=workers, seed=seed, progress=progress_logger(label)
    )
    began = time.perf_counter()
    solution = solve(problem, options)
    return solution, time.perf_counter() - began


def gap_percent(value: int | None, reference: int | None) -> float | None:
    if value is None or not reference:
        return None
    return round(100.0 * (value - reference) / reference, 1)
