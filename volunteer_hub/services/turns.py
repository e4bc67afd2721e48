"""Taking turns in long Python loops, so that a worker's other requests are not held.

Under gunicorn's gevent workers (gunicorn.conf.py) a request hands over to the worker's other
requests only when it waits (for the database, the network, a lock). A loop that computes
for long without waiting holds all of them meanwhile: every check-in that worker holds waits
for the whole export or publish. `in_turns` pauses such a loop for a moment every `TURN_S`
seconds; gevent makes the sleep a switch to the event loop (the other requests run, then the
loop goes on), and under threads it is a short sleep that lets the other threads run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# How long a loop computes before letting the worker's other requests run.
TURN_S = 0.02


def in_turns(items: Iterable[T], turn_s: float = TURN_S) -> Iterator[T]:
    """`items`, pausing for a moment every `turn_s` seconds spent on them."""
    began = time.perf_counter()
    for item in items:
        yield item
        if time.perf_counter() - began >= turn_s:
            time.sleep(0.0005)
            began = time.perf_counter()
