"""The solver at federation scale: generated patrol weeks of 1k to 40k volunteers.

    python -m bench.solver_scale [--sizes 1000,5000,10000,40000] [--time-limit 30] [--seed 0]

Each size runs in its own process so that its peak memory is its own (ru_maxrss of the child,
as the child measures itself and as the parent sees it through RUSAGE_CHILDREN). Per size:
generation, eligibility and max-flow times, eligible pairs, the slots filled by greedy and by
the solver against the max-flow bound, both objectives as re-scored by the checker, and the
checker's verdict, and the proven lower bound of `scheduling.costbound` with the solver's gap
to it ("gap %"), how much better than greedy the solver is ("vs greedy %") and how much better
than greedy any roster could be ("at most %"). Results also go to
bench/results/solver_scale.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from bench.common import format_table, log, parse_ints, solve_timed, write_results
from scheduling.checker import check
from scheduling.costbound import cost_lower_bound
from scheduling.eligibility import eligible_arrays
from scheduling.generator import generate_federation_week
from scheduling.maxflow import max_fillable_slots, total_slots
from scheduling.problem import Pair, Problem


def filled_slots(problem: Problem, assignments: Iterable[Pair]) -> int:
    counts = Counter(pair.shift for pair in set(assignments))
    return sum(min(shift.required, counts[shift.id]) for shift in problem.shifts)


def measure(volunteers: int, time_limit: float, workers: int, seed: int) -> dict[str, Any]:
    """Everything for one size, in this process."""
    from scheduling.eligibility import eligible_pairs
    from scheduling.greedy import greedy

    timings: dict[str, float] = {}

    def timed(name: str, began: float) -> None:
        timings[name] = round(time.perf_counter() - began, 2)

    began = time.perf_counter()
    problem = generate_federation_week(volunteers, seed=seed)
    timed("generate_s", began)
    began = time.perf_counter()
    eligible = eligible_pairs(problem)
    timed("eligibility_s", began)
    began = time.perf_counter()
    bound = max_fillable_slots(problem, eligible)
    timed("maxflow_s", began)
    began = time.perf_counter()
    greedy_roster = greedy(problem)
    timed("greedy_s", began)
    greedy_report = check(problem, greedy_roster)
    solution, solve_s = solve_timed(problem, time_limit, workers, seed, f"{volunteers} volunteers")
    timings["solve_s"] = round(solve_s, 2)
    report = check(problem, solution.assignments)
    solver_peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    # A proven floor under every roster's cost (scheduling.costbound), after the peak memory
    # is taken: the 40,000-volunteer flow has 20 million arcs and is not part of solving.
    began = time.perf_counter()
    floor = cost_lower_bound(problem, eligible_arrays(problem))
    timed("bound_s", began)
    log(f"  {volunteers} volunteers: proven bound {floor} ({timings['bound_s']} s)")
    return {
        "volunteers": volunteers,
        "shifts": len(problem.shifts),
        "slots": total_slots(problem),
        "eligible_pairs": sum(len(v) for v in eligible.values()),
        "max_fillable": bound,
        "greedy_filled": filled_slots(problem, greedy_roster),
        "greedy_objective": greedy_report.objective,
        "greedy_ok": greedy_report.ok,
        "status": solution.status,
        "filled": filled_slots(problem, solution.assignments),
        "objective": report.objective,
        "claimed": solution.objective,
        "bound": solution.bound,
        "checker": "ok" if report.ok else f"{len(report.violations)} violations",
        **timings,
        "self_maxrss_mb": solver_peak_mb,
        "proven_bound": floor,
        "gap_to_bound_pct": round(100 * (report.objective - floor) / max(1, floor), 2),
        "better_than_greedy_pct": round(
            100 * (greedy_report.objective - report.objective) / max(1, greedy_report.objective), 2
        ),
        "greedy_best_possible_pct": round(
            100 * (greedy_report.objective - floor) / max(1, greedy_report.objective), 2
        ),
    }


def run_child(volunteers: int, time_limit: float, workers: int, seed: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.solver_scale",
        "--one",
        str(volunteers),
        "--time-limit",
        str(time_limit),
        "--workers",
        str(workers),
        "--seed",
        str(seed),
    ]
    began = time.perf_counter()
    # stderr passes through so that the child's progress lines show as they come.
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    wall = round(time.perf_counter() - began, 1)
    children_mb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if result.returncode != 0:
        return {"volunteers": volunteers, "error": f"exit {result.returncode}", "wall_s": wall}
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    row["wall_s"] = wall
    # RUSAGE_CHILDREN is the largest child so far; with sizes ascending it is this one's.
    row["children_maxrss_mb"] = children_mb
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_ints, default=[1000, 5000, 10000, 40000])
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.time_limit, args.workers, args.seed)))
        return 0
    rows = []
    for size in args.sizes:
        log(f"{size} volunteers, {args.time_limit:g}s limit")
        rows.append(run_child(size, args.time_limit, args.workers, args.seed))
        write_results("solver_scale", rows)
    headers = [
        "volunteers",
        "shifts",
        "pairs",
        "slots",
        "max-flow",
        "greedy filled",
        "solver filled",
        "greedy obj",
        "solver obj",
        "bound",
        "gap %",
        "vs greedy %",
        "at most %",
        "checker",
        "solve s",
        "wall s",
        "peak MB",
    ]
    print(
        format_table(
            headers,
            [
                [
                    r.get("volunteers"),
                    r.get("shifts"),
                    r.get("eligible_pairs"),
                    r.get("slots"),
                    r.get("max_fillable"),
                    r.get("greedy_filled"),
                    r.get("filled"),
                    r.get("greedy_objective"),
                    r.get("objective"),
                    r.get("proven_bound"),
                    r.get("gap_to_bound_pct"),
                    r.get("better_than_greedy_pct"),
                    r.get("greedy_best_possible_pct"),
                    r.get("checker", r.get("error")),
                    r.get("solve_s"),
                    r.get("wall_s"),
                    r.get("self_maxrss_mb"),
                ]
                for r in rows
            ],
        )
    )
    log(f"results: {write_results('solver_scale', rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
