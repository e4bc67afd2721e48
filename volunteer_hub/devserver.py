"""`make run`: the whole system on one machine with nothing installed.

Migrates the embedded SQLite database (or DATABASE_URL), seeds the demo federation when the
database has no members, starts a fake FCM that prints what each phone would receive, runs
the worker in a thread, and serves the API on 127.0.0.1:5000.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from flask import Flask

DEMO_PASSWORD_DEFAULT = "demo2026"

DEMO_LOGINS = [
    ("13900000000", "secretary-general 秘书长"),
    ("13900000001", "coordinator, mediation 矛盾调解"),
    ("13900000002", "coordinator, hazard 隐患排查"),
    ("13900000003", "coordinator, patrol 治安巡防"),
    ("13900000004", "coordinator, rescue 应急救援"),
    ("13900000005", "coordinator, cyber 网络清朗"),
    ("13900000006", "coordinator, assistance 特殊人群帮扶"),
    ("13900000007", "coordinator, publicity 平安宣传"),
    ("13900000009", "admin"),
    ("13900000010", "patrol squad leader of the first town"),
    ("13900000020", "grid worker 网格员"),
    ("13900000100", "patrol volunteer (…100 to …119 live in the first town; past patrols)"),
]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _start_fake_fcm(app: Flask) -> Any:
    """A fake FCM on a local port, and the app configured to deliver to it."""
    from notifications.fakefcm import FakeFcm

    port = int(os.environ.get("FAKE_FCM_PORT", "8765"))
    fake = FakeFcm(port=port, log=sys.stdout)
    base_url = fake.start()
    credentials = os.path.join(app.instance_path, "fake-fcm-service-account.json")
    fake.write_service_account(credentials)
    app.config["FCM_CREDENTIALS"] = credentials
    app.config["FCM_URL"] = base_url
    _say(f"fake FCM listening on {base_url}; pushes are printed below as phones would see them")
    return fake


def _migrate_and_seed(app: Flask, members: int, password: str) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from volunteer_hub.extensions import db
    from volunteer_hub.models import Member
    from volunteer_hub.services.seed import seed_federation

    with app.app_context():
        _say("migrating the database …")
        upgrade()
        if db.session.scalar(select(func.count(Member.id))):
            _say("the database already has members; not seeding")
            return
        _say(f"seeding the demo federation with {members} members (first run only) …")
        started = time.monotonic()
        seed_federation(
            db.session(),
            members=members,
            towns=24,
            seed=1,
            password=password,
            progress=lambda line: _say(f"  {line}"),
        )
        _say(f"seeded in {time.monotonic() - started:.1f} s")


def _print_logins(password: str, base_url: str) -> None:
    lines = [
        "",
        f"Volunteer Hub is running on {base_url}/api/v1  (OpenAPI: /api/v1/openapi.json)",
        f"Demo logins (password: {password}):",
        *(f"  {phone}  {role}" for phone, role in DEMO_LOGINS),
        f"Try: curl -s -X POST {base_url}/api/v1/auth/login "
        '-H "Content-Type: application/json" '
        f'-d \'{{"phone": "13900000003", "password": "{password}"}}\'',
        "",
    ]
    _say("\n".join(lines))


def main() -> None:
    from volunteer_hub.app import create_app
    from volunteer_hub.jobs.worker import start_worker_thread

    password = os.environ.get("DEMO_PASSWORD", DEMO_PASSWORD_DEFAULT)
    members = int(os.environ.get("DEMO_MEMBERS", "40000"))
    host = os.environ.get("HUB_HOST", "127.0.0.1")
    port = int(os.environ.get("HUB_PORT", "5000"))
    app = create_app()
    _migrate_and_seed(app, members, password)
    fake = _start_fake_fcm(app)
    worker = start_worker_thread(app)
    _print_logins(password, f"http://{host}:{port}")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        worker.shutdown(wait=False)
        fake.stop()


if __name__ == "__main__":
    main()
