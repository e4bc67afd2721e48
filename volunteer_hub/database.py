"""Engine set-up that makes SQLite safe for concurrent writers and PostgreSQL explicit.

SQLite: WAL so readers don't block the writer, a busy timeout, foreign keys on, and every
transaction opened with BEGIN IMMEDIATE so that two requests can never both read a row and
then both write it (the second waits for the first instead of losing its update).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from volunteer_hub.extensions import db


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No pre-ping: it is a round trip on every checkout (a check-in is a handful). Connections
    # are recycled before server or proxy idle timeouts instead, and when one turns out dead
    # SQLAlchemy sees the disconnect error and invalidates every connection of the pool made
    # before it, so a database restart costs the requests in flight, not every later one.
    return {
        "pool_pre_ping": False,
        "pool_recycle": 300,
        "pool_use_lifo": True,
        "pool_size": 10,
        "max_overflow": 20,
    }


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN IMMEDIATE is ours to send.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def init_database(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)


def is_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"
