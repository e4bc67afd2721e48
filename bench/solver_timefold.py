"""Timefold's own employee-scheduling instances (SMALL, LARGE, XL): our rosters scored in
Timefold's terms beside what Timefold itself reaches.

    python -m bench.solver_timefold [--time-limits 10,30] [--instances SMALL,LARGE,XL]

Each roster is written to bench/results/timefold_NAME_LIMITs.solution.json and scored by the
benchmark's own `tf_score.py` (unassigned shifts, hard, soft); our checker's verdict is shown
too. Timefold's figures are read from the benchmark README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DATA_DIR,
    RESULTS_DIR,
    format_table,
    log,
    parse_floats,
    solve_timed,
    write_results,
)
from scheduling.checker import check
from scheduling.problem import read_problem, solution_to_dict

TIMEFOLD_DIR = DATA_DIR / "timefold"
INSTANCES = ("SMALL", "LARGE", "XL")


def timefold_figures(readme: Path) -> dict[str, dict[str, str]]:
    """The 'What Timefold reaches' table: instance → {'10 s': text, '30 s': text, ...}."""
    figures: dict[str, dict[str, str]] = {}
    headers: list[str] = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| instance | 10 s"):
            headers = cells[1:]
        elif headers and line.startswith("|") and cells[0] in INSTANCES:
            figures[cells[0]] = dict(zip(headers, cells[1:], strict=False))
        elif headers and not line.startswith("|"):
            headers = []
    return figures


def tf_score(instance: str, solution_path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            str(TIMEFOLD_DIR / "tf_score.py"),
            str(TIMEFOLD_DIR / f"{instance}.timefold.json"),
            str(solution_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip() or f"exit {result.returncode}"}
    scored: dict[str, Any] = json.loads(result.stdout)
    return scored


def run_one(instance: str, limit: float, workers: int, seed: int) -> dict[str, Any]:
    began = time.perf_counter()
    problem = read_problem(str(TIMEFOLD_DIR / f"{instance}.problem.json"))
    solution, solve_s = solve_timed(problem, limit, workers, seed, f"{instance}@{limit:g}s")
    wall = time.perf_counter() - began
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"timefold_{instance}_{limit:g}s.solution.json"
    path.write_text(json.dumps(solution_to_dict(solution)) + "\n", encoding="utf-8")
    report = check(problem, solution.assignments)
    scored = tf_score(instance, path)
    return {
        "instance": instance,
        "time_limit_s": limit,
        "status": solution.status,
        "objective": report.objective,
        "checker": "ok" if report.ok else f"{len(report.violations)} violations",
        "unassigned": scored.get("unassigned"),
        "hard": scored.get("hard"),
        "soft": scored.get("soft"),
        "tf_error": scored.get("error"),
        "solve_s": round(solve_s, 1),
        "wall_s": round(wall, 1),
        # The machine's 1-minute load average as the run ends: figures taken on a busy
        # machine are not comparable with quiet ones.
        "load": round(os.getloadavg()[0], 1),
        "solution": str(path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limits", type=parse_floats, default=[10.0, 30.0])
    parser.add_argument(
        "--instances", type=lambda t: [p.strip() for p in t.split(",")], default=list(INSTANCES)
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.instances) - set(INSTANCES))
    if unknown:
        parser.error(f"unknown instance(s) {', '.join(unknown)}; choose from {INSTANCES}")
    theirs = timefold_figures(TIMEFOLD_DIR / "README.md")
    rows = []
    for instance in args.instances:
        for limit in args.time_limits:
            log(f"{instance} at {limit:g}s")
            row = run_one(instance, limit, args.workers, args.seed)
            row["timefold"] = theirs.get(instance, {}).get(f"{limit:g} s", "–")
            rows.append(row)
            write_results("solver_timefold", rows)
            log(
                f"  -> unassigned {row['unassigned']}, hard {row['hard']}, soft {row['soft']}, "
                f"checker {row['checker']}, {row['wall_s']}s"
            )
    headers = [
        "instance",
        "limit s",
        "unassigned",
        "hard",
        "soft",
        "checker",
        "wall s",
        "load",
        "Timefold at same limit",
    ]
    print(
        format_table(
            headers,
            [
                [
                    r["instance"],
                    f"{r['time_limit_s']:g}",
                    r["unassigned"],
                    r["hard"],
                    r["soft"],
                    r["checker"],
                    r["wall_s"],
                    r["load"],
                    r["timefold"],
                ]
                for r in rows
            ],
        )
    )
    log("Timefold's soft score is higher-is-better; its wall times exclude 20-66 s of start-up.")
    log(f"results: {write_results('solver_timefold', rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
