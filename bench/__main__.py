"""`make bench`: every benchmark in turn, each in its own process, each printing its figures.

`python -m bench seed push` runs only those; `python -m bench --list` names them.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = [
    "seed",
    "solver_scale",
    "solver_timefold",
    "solver_curtois",
    "plans",
    "attendance",
    "push",
    "dispatch",
]


def main(argv: list[str]) -> int:
    if "--list" in argv:
        print("\n".join(BENCHES))
        return 0
    chosen = [name for name in argv if not name.startswith("-")] or BENCHES
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    failed = []
    for index, name in enumerate(chosen, 1):
        print(f"\n=== [{index}/{len(chosen)}] bench.{name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(
            f"=== bench.{name} finished in {time.monotonic() - started:.0f} s (exit {code})",
            file=sys.stderr,
            flush=True,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
