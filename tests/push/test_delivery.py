"""The drain against the fake FCM through the real firebase-admin, with the clock driven."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from notifications.fakefcm import FakeFcm
from tests.conftest import Factory
from tests.push.conftest import Push
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import (
    Device,
    InboxItem,
    OutboxDelivery,
    OutboxMessage,
    OutboxStatus,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import delivery, outbox
from volunteer_hub.services.delivery import DrainSettings
from volunteer_hub.services.publish import reminder_pushes, shift_info


def _message_ids(fake: FakeFcm) -> list[str]:
    return [record["message"]["data"]["message_id"] for record in fake.messages()]


def test_a_push_reaches_every_device_with_one_message_id(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "phone-a")
    push.add_device(member, "tablet-a")
    row_id = push.enqueue(member)

    [report] = push.drain()

    assert (report.claimed, report.pushes, report.sent) == (1, 2, 1)
    row = push.row(row_id)
    assert row.status == OutboxStatus.SENT and row.sent_at is not None
    assert row.attempts == 1 and row.claimed_by is None
    assert sorted(r["token"] for r in fake_fcm.messages()) == ["phone-a", "tablet-a"]
    assert set(_message_ids(fake_fcm)) == {row.message_id}
    assert fake_fcm.messages()[0]["message"]["notification"]["title"].startswith("新的排班")
    assert push.drain() == []  # nothing is sent twice


def test_a_member_without_a_device_still_has_the_message_in_the_inbox(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    row_id = push.enqueue(member)

    [report] = push.drain()

    assert report.no_device == 1
    assert push.row(row_id).status == OutboxStatus.NO_DEVICE
    assert fake_fcm.messages() == []
    with push.app.app_context():
        assert db.session.scalar(select(InboxItem.outbox_id)) == row_id


@pytest.mark.parametrize("error", ["UNREGISTERED", "NOT_FOUND", "SENDER_ID_MISMATCH"])
def test_a_dead_token_is_dropped_and_the_other_devices_still_get_the_push(
    push: Push, factory: Factory, fake_fcm: FakeFcm, error: str
) -> None:
    member = factory.create_member()
    push.add_device(member, "old-install")
    push.add_device(member, "new-install")
    fake_fcm.set_token_error("old-install", error)
    row_id = push.enqueue(member)

    [report] = push.drain()

    assert report.dead_tokens == 1
    assert push.row(row_id).status == OutboxStatus.SENT
    assert [r["token"] for r in fake_fcm.messages()] == ["new-install"]
    with push.app.app_context():
        assert list(db.session.scalars(select(Device.token))) == ["new-install"]


def test_a_member_whose_only_token_is_dead_ends_as_no_device(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "fake-dead-phone")  # the fake answers UNREGISTERED
    row_id = push.enqueue(member)

    push.drain()

    row = push.row(row_id)
    assert row.status == OutboxStatus.NO_DEVICE
    assert row.last_error is not None and row.last_error.startswith("UNREGISTERED")
    with push.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Device)) == 0


def test_a_rejected_message_fails_with_the_reason(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "garbled")
    fake_fcm.set_token_error("garbled", "INVALID_ARGUMENT")
    row_id = push.enqueue(member)

    [report] = push.drain()

    row = push.row(row_id)
    assert report.failed == 1 and row.status == OutboxStatus.FAILED
    assert row.last_error is not None and row.last_error.startswith("INVALID_ARGUMENT")
    assert push.drain(utcnow() + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("error", "retry_after", "least_s", "most_s"),
    [
        ("UNAVAILABLE", None, 5, 10),  # backoff base 10 s, equal jitter: 5..10 s
        ("INTERNAL", None, 5, 10),
        ("QUOTA_EXCEEDED", 120, 120, 120),  # Retry-After wins over the shorter backoff
        ("QUOTA_EXCEEDED", 1200, 1200, 1200),  # and over the backoff's cap (600 s here)
        ("UNAVAILABLE", 200_000, 86_400, 86_400),  # at most a day
    ],
)
def test_a_retryable_error_reschedules_with_backoff_honouring_retry_after(
    push: Push,
    factory: Factory,
    fake_fcm: FakeFcm,
    error: str,
    retry_after: int | None,
    least_s: float,
    most_s: float,
) -> None:
    member = factory.create_member()
    push.add_device(member, "busy")
    fake_fcm.set_token_error("busy", error, retry_after=retry_after)
    row_id = push.enqueue(member)
    now = utcnow()

    started = time.monotonic()
    [report] = push.drain(now)

    assert time.monotonic() - started < 5  # the quota answer did not block the worker
    row = push.row(row_id)
    assert report.retried == 1
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith(error)
    wait = (row.next_attempt_at - now).total_seconds()
    assert least_s <= wait <= most_s
    assert push.drain(now + timedelta(seconds=least_s - 1)) == []  # not due yet
    fake_fcm.set_token_error("busy", None)
    push.drain(now + timedelta(seconds=most_s + 1))
    assert push.row(row_id).status == OutboxStatus.SENT
    assert [r["token"] for r in fake_fcm.messages()] == ["busy"]


def test_a_retry_skips_the_devices_that_already_have_the_push(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "reachable")
    push.add_device(member, "flaky")
    fake_fcm.set_token_error("flaky", "UNAVAILABLE")
    row_id = push.enqueue(member)
    now = utcnow()

    push.drain(now)
    with push.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxDelivery)) == 1
    fake_fcm.set_token_error("flaky", None)
    push.drain(now + timedelta(minutes=5))

    assert push.row(row_id).status == OutboxStatus.SENT
    assert Counter(r["token"] for r in fake_fcm.messages()) == {"reachable": 1, "flaky": 1}
    assert len(set(_message_ids(fake_fcm))) == 1


def test_after_the_bounded_tries_a_push_is_failed_and_visible(
    push: Push, factory: Factory, fake_fcm: FakeFcm, client: object
) -> None:
    member = factory.create_member()
    push.add_device(member, "never-up")
    fake_fcm.set_token_error("never-up", "UNAVAILABLE")
    row_id = push.enqueue(member)
    now = utcnow()

    for _ in range(12):
        push.drain(now)
        now += timedelta(minutes=11)  # past the 600 s cap of the test settings

    row = push.row(row_id)
    assert row.status == OutboxStatus.FAILED
    assert row.attempts == 8
    assert row.last_error is not None and row.last_error.startswith("gave up: UNAVAILABLE")
    assert len(fake_fcm.messages()) == 0
    assert fake_fcm.stats()["failed"] == 8


def test_an_outage_loses_nothing_and_everything_arrives_after(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    members = [factory.create_member() for _ in range(20)]
    for index, member in enumerate(members):
        push.add_device(member, f"phone-{index}")
    rows = [push.enqueue(member) for member in members]
    fake_fcm.outage(1.5)
    now = utcnow()

    rounds = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        push.drain(now)
        rounds += 1
        if all(push.row(row).status == OutboxStatus.SENT for row in rows):
            break
        now += timedelta(minutes=11)
        time.sleep(0.3)

    assert rounds > 1  # the outage was really hit
    assert all(push.row(row).status == OutboxStatus.SENT for row in rows)
    assert Counter(r["token"] for r in fake_fcm.messages()) == {
        f"phone-{index}": 1 for index in range(20)
    }
    assert fake_fcm.stats()["failed"] >= 20


def _queue_reminders(push: Push, member: int, assignment_id: int, starts: datetime) -> list[int]:
    """A shift's reminders queued as publishing queues them (24 h and 2 h ahead, those not yet
    past); their row ids, earliest due first."""

    def queue(session: Any) -> list[int]:
        shift = shift_info(assignment_id, starts, starts + timedelta(hours=8), "东湖花园南门")
        outbox.enqueue_bulk(
            session, reminder_pushes(assignment_id, member, shift, (24, 2), utcnow())
        )
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.assignment_id == assignment_id,
                    OutboxMessage.kind == "shift_reminder",
                )
                .order_by(OutboxMessage.deliver_after)
            )
        )

    return push.run(queue)  # type: ignore[no-any-return]


def test_reminders_are_sent_when_due_and_not_before(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "phone")
    now = utcnow()
    starts = now + timedelta(hours=30)
    rows = _queue_reminders(push, member, 41, starts)
    assert len(rows) == 2

    assert push.drain(now) == []
    assert push.drain(now + timedelta(hours=5, minutes=59)) == []
    assert fake_fcm.messages() == []
    push.drain(now + timedelta(hours=6, seconds=1))
    assert [push.row(r).status for r in rows] == [OutboxStatus.SENT, OutboxStatus.PENDING]
    push.drain(now + timedelta(hours=28, seconds=1))
    assert [push.row(r).status for r in rows] == [OutboxStatus.SENT, OutboxStatus.SENT]
    [first, second] = fake_fcm.messages()
    assert first["message"]["android"]["collapse_key"] == "reminder-41"
    assert first["message"]["data"]["message_id"] != second["message"]["data"]["message_id"]


def test_a_reminder_already_past_is_not_queued_and_queueing_twice_adds_nothing(
    push: Push, factory: Factory
) -> None:
    member = factory.create_member()
    starts = utcnow() + timedelta(hours=3)
    assert len(_queue_reminders(push, member, 5, starts)) == 1  # only the 2-hour reminder
    assert len(_queue_reminders(push, member, 5, starts)) == 1  # the same one, not another


def test_cancelled_reminders_are_never_sent_and_leave_the_inbox(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "phone")
    starts = utcnow() + timedelta(hours=30)
    _queue_reminders(push, member, 9, starts)

    cancelled = push.run(lambda session: outbox.cancel_pending(session, assignment_id=9))

    assert cancelled == 2
    assert push.drain(starts + timedelta(hours=1)) == []
    assert fake_fcm.messages() == []
    with push.app.app_context():
        statuses = set(db.session.scalars(select(OutboxMessage.status)))
        withdrawn = list(db.session.scalars(select(InboxItem.withdrawn_at)))
    assert statuses == {OutboxStatus.CANCELLED}
    assert all(at is not None for at in withdrawn)


def test_a_row_whose_lease_ran_out_is_taken_over_and_the_late_result_is_ignored(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "phone")
    row_id = push.enqueue(member)
    now = utcnow()
    settings = DrainSettings(lease_s=60)

    with push.app.app_context():
        [stalled], _ = delivery.claim(db.session(), "stalled-worker", now, settings)
        db.session.remove()
    assert push.drain(now + timedelta(seconds=30)) == []  # leased to the stalled worker
    [report] = push.drain(now + timedelta(seconds=61))
    assert report.sent == 1

    # The stalled worker wakes up and reports a retry; the row is no longer its to change.
    with push.app.app_context():
        late = delivery.drain_batch(
            db.session(),
            _AlwaysRetry(),
            worker_id="stalled-worker",
            now=now + timedelta(seconds=62),
            settings=settings,
        )
        db.session.remove()
    assert late.claimed == 0
    row = push.row(row_id)
    assert row.status == OutboxStatus.SENT and row.attempts == 2
    assert [r["message"]["data"]["message_id"] for r in fake_fcm.messages()] == [row.message_id]
    assert stalled.message_id == row.message_id


def test_results_of_a_lost_lease_are_not_recorded(push: Push, factory: Factory) -> None:
    member = factory.create_member()
    push.add_device(member, "phone")
    row_id = push.enqueue(member)
    now = utcnow()

    with push.app.app_context():
        session = db.session()
        claimed, _ = delivery.claim(session, "worker-a", now, DrainSettings(lease_s=10))
        # Worker B takes the row over after A's lease and records a success.
        taken, _ = delivery.claim(
            session, "worker-b", now + timedelta(seconds=11), DrainSettings(lease_s=10)
        )
        assert [c.id for c in taken] == [c.id for c in claimed]
        report = delivery.BatchReport()
        # A's verdict arrives late; it must not overwrite the row B now holds.
        delivery._record(
            session,
            "worker-a",
            now + timedelta(seconds=12),
            DrainSettings(),
            random.Random(1),
            claimed,
            {},
            {claimed[0].id: "cannot render"},
            report,
        )
        db.session.remove()
    assert report.lost_lease == 1
    row = push.row(row_id)
    assert row.status == OutboxStatus.PENDING and row.claimed_by == "worker-b"


def test_a_row_that_cannot_be_rendered_fails_without_a_send(
    push: Push, factory: Factory, fake_fcm: FakeFcm
) -> None:
    member = factory.create_member()
    push.add_device(member, "phone")
    row_id = push.enqueue(member)
    push.run(
        lambda session: session.execute(
            OutboxMessage.__table__.update().values(kind="from_a_newer_release")
        )
    )

    push.drain()

    row = push.row(row_id)
    assert row.status == OutboxStatus.FAILED
    assert row.last_error is not None and "from_a_newer_release" in row.last_error
    assert fake_fcm.stats()["send_requests"] == 0


class _AlwaysRetry:
    def send(self, pushes: list[object]) -> list[object]:
        raise AssertionError("a worker without claimed rows must not send")
