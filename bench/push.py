"""10,000 queued pushes drained through the fake FCM, against a bare FcmSender.send loop.

Run: ``.venv/bin/python -m bench.push [--pushes 10000]`` with PostgreSQL at BENCH_DATABASE_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres). A scratch database
``bench_push`` is created, migrated, filled with members (one device each) and dropped after.
Target: the drain reaches at least 0.8 of the bare send rate.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, make_url, select

from notifications.fakefcm import FakeFcm
from notifications.fcm import FcmSender, Outcome
from notifications.messages import build_push, new_message_id

TARGET = 0.8
PARAMS = {
    "assignment_id": "1",
    "post": "东湖花园南门",
    "date": "6月3日（周二）",
    "start": "06:00",
    "end": "21:00",
}


def _progress(text: str) -> None:
    print(f"[bench.push] {text}", file=sys.stderr, flush=True)


def _scratch(base_url: str, name: str) -> tuple[str, str]:
    url = make_url(base_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return url.set(database=name).render_as_string(hide_password=False), admin


def bare_rate(fake: FakeFcm, service_account: Path, count: int) -> float:
    """Messages/s of FcmSender.send over ``count`` pushes, no database."""
    pushes = [
        build_push("assignment_published", PARAMS, token=f"bench-{i}", message_id=new_message_id())
        for i in range(count)
    ]
    with FcmSender(service_account, endpoint=fake.base_url) as sender:
        sender.warm_up()
        started = time.perf_counter()
        results = sender.send(pushes)
        seconds = time.perf_counter() - started
    assert all(r.outcome is Outcome.SENT for r in results), "bare send failed"
    return count / seconds


def drain_rate(url: str, fake: FakeFcm, service_account: Path, count: int) -> float:
    """Messages/s of the outbox drain over ``count`` queued rows (one device per member)."""
    from flask_migrate import upgrade

    from volunteer_hub.app import create_app
    from volunteer_hub.extensions import db
    from volunteer_hub.jobs.outbox import drain_outbox
    from volunteer_hub.models import Member
    from volunteer_hub.models.notifications import Device, OutboxMessage, OutboxStatus
    from volunteer_hub.services import outbox

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "JWT_SECRET_KEY": "bench-" + "x" * 32,
            "FCM_CREDENTIALS": str(service_account),
            "FCM_URL": fake.base_url,
        }
    )
    with app.app_context():
        upgrade()
        _progress(f"migrated; adding {count} members with a device each")
        session = db.session()
        members = session.scalars(
            insert(Member).returning(Member.id),
            [
                {"name": f"队员{i}", "phone": f"139{i:08d}", "password_hash": "-"}
                for i in range(count)
            ],
        ).all()
        session.execute(
            insert(Device),
            [
                {"member_id": m, "token": f"bench-{i}", "platform": "android"}
                for i, m in enumerate(members)
            ],
        )
        session.commit()
        for start in range(0, count, 1000):
            for member in members[start : start + 1000]:
                outbox.enqueue(
                    session, recipient_id=member, kind="assignment_published", params=PARAMS
                )
            session.commit()
        _progress(f"queued {count} pushes; warming the sender")
        from volunteer_hub.push import get_sender

        get_sender(app).warm_up()
        db.session.remove()
        fake.clear_messages()
        started = time.perf_counter()
        reports = drain_outbox()
        seconds = time.perf_counter() - started
        for report in reports[:3]:
            _progress(report.line())
        sent = db.session.scalar(
            select(func.count()).where(OutboxMessage.status == OutboxStatus.SENT)
        )
        db.session.remove()
        db.engine.dispose()
    assert sent == count, f"only {sent} of {count} marked sent"
    assert len(fake.messages()) == count, "the fake did not receive every push exactly once"
    _progress(f"drained {count} in {seconds:.2f}s over {len(reports)} batches")
    return count / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=10_000)
    args = parser.parse_args(argv)
    base = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    url, admin = _scratch(base, "bench_push")
    fake = FakeFcm(log=io.StringIO())
    fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.setdefault("HUB_INSTANCE_DIR", tmp)
            service_account = Path(tmp) / "sa.json"
            fake.write_service_account(service_account)
            _progress(f"bare FcmSender.send of {args.pushes} pushes")
            bare = bare_rate(fake, service_account, args.pushes)
            _progress(f"bare: {bare:.0f} msg/s")
            fake.clear_messages()
            drained = drain_rate(url, fake, service_account, args.pushes)
    finally:
        fake.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "bench_push" WITH (FORCE)')
    ratio = drained / bare
    print(f"pushes: {args.pushes}")
    print(f"bare send_each loop: {bare:.0f} msg/s")
    print(f"outbox drain:        {drained:.0f} msg/s")
    print(f"ratio: {ratio:.2f} (target >= {TARGET}) {'OK' if ratio >= TARGET else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
