"""gunicorn's settings for the API (README: production deployment). gunicorn reads this file
from its working directory; `-c gunicorn.conf.py` names it wherever gunicorn is started.

Each worker is one process serving every connection from greenlets (gevent). A check-in
then waits for the database in a greenlet, not in one of a few threads, so many check-ins
are in flight in each worker at once, and the check-in's fast path sends those waiting
together as one statement (`services.check_in_fast.Batcher`): on the 2-core reference host,
`bench.attendance` measured 0.10-0.12 ms of PostgreSQL CPU per check-in this way against
0.44-0.46 ms with two threads per worker, each tap its own statement and commit.
"""

from __future__ import annotations

from typing import Any

# One worker process per core; `-w` on the command line overrides it.
workers = 2
worker_class = "gevent"
# Connections each worker serves at once (a keep-alive connection holds one while open).
worker_connections = 1000
# Each worker its own listening socket, the kernel spreading new connections between them: on
# one shared socket whichever worker woke first took them (100 keep-alive clients split as
# unevenly as 83/17 between two workers, whose clients then waited three times as long).
reuse_port = True
# No `preload_app`: the app must be imported in each worker after gevent has patched the
# standard library, so that psycopg (which picks its way of waiting when imported) waits for
# the database in a way that lets the worker's other greenlets run.


def pre_request(worker: Any, req: Any) -> None:
    """Let the other connections' requests go first, once the event loop has nothing else
    to do. A greenlet answers a keep-alive connection's requests one after another and only
    hands over when a read has to wait; a client that sends its next request within the
    time the worker takes to finish the last one never makes it wait. Measured with 100
    keep-alive clients asking for /health without pause: without this, some connections
    were answered 300 times and others once in a run, and a new connection waited up to
    0.9 s to be accepted (p99 164-197 ms); with it, 41-63 answers each and p99 35-39 ms, at
    the same throughput."""
    if worker.cfg.worker_class_str != "gevent":
        return  # another worker class, chosen on the command line (`-k gthread`)
    import gevent  # imported here, in the worker, after gevent has patched the library

    gevent.idle()
