"""`outbox.enqueue_bulk`: many pushes with different params in one go (COPY on PostgreSQL,
multi-row INSERT on SQLite), the same rows and inbox items `outbox.enqueue` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.services import outbox
from volunteer_hub.services.outbox import BulkPush

SHIFT = {"post": "东门岗", "date": "6月3日（周二）", "start": "08:00", "end": "12:00"}


def _counts() -> tuple[int, int]:
    return (
        int(db.session.scalar(select(func.count(OutboxMessage.id))) or 0),
        int(db.session.scalar(select(func.count(InboxItem.id))) or 0),
    )


def test_rows_and_inbox_items_match_what_enqueue_writes(app: Flask, factory: Factory) -> None:
    people = [factory.create_member(name=f"队员{i}") for i in range(3)]
    later = datetime(2030, 6, 3, 0, 0, tzinfo=UTC)
    # Text COPY must escape these; JSON must keep them.
    awkward = "东门\t岗\\B区\n（新）"
    shared = {"assignment_id": "41", **SHIFT}
    rows = [
        BulkPush(people[0], "assignment_published", shared, dedupe_key="k:1"),
        BulkPush(people[0], "shift_reminder", shared, dedupe_key="k:2", deliver_after=later),
        BulkPush(
            people[1],
            "assignment_cancelled",
            {"assignment_id": "42", **SHIFT, "post": awkward, "reason": "天气原因。"},
            dedupe_key="k\t3",
        ),
        BulkPush(people[2], "slot_offer", {"offer_id": "7", **SHIFT}),
    ]
    with app.app_context():
        added = outbox.enqueue_bulk(db.session, rows)
        db.session.commit()
        assert added == 4
        messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        items = {i.outbox_id: i for i in db.session.scalars(select(InboxItem))}
        assert [m.recipient_id for m in messages] == [people[0], people[0], people[1], people[2]]
        assert {m.status for m in messages} == {OutboxStatus.PENDING}
        assert len({m.message_id for m in messages}) == 4
        assert messages[1].deliver_after == later == items[messages[1].id].visible_at
        assert messages[2].params["post"] == awkward
        assert messages[2].dedupe_key == "k\t3"
        assert messages[3].dedupe_key is None
        cancelled = items[messages[2].id]
        assert cancelled.title.startswith("排班取消：" + awkward)
        assert cancelled.body.endswith("天气原因。")
        for message in messages:
            item = items[message.id]
            assert item.member_id == message.recipient_id and item.kind == message.kind
            assert item.data["message_id"] == message.message_id
            assert item.data["kind"] == message.kind
        assert items[messages[0].id].data["assignment_id"] == "41"
        assert items[messages[3].id].data == {
            "offer_id": "7",
            "kind": "slot_offer",
            "message_id": messages[3].message_id,
        }
        # The same rows again add nothing; a repeated key within one call is written once.
        assert outbox.enqueue_bulk(db.session, rows[:3]) == 0
        assert (
            outbox.enqueue_bulk(
                db.session,
                [
                    BulkPush(people[1], "slot_offer", {"offer_id": "8", **SHIFT}, "k:9"),
                    BulkPush(people[1], "slot_offer", {"offer_id": "8", **SHIFT}, "k:9"),
                ],
            )
            == 1
        )
        db.session.commit()
        assert _counts() == (5, 5)
        # The single-row writer sees the bulk writer's keys.
        assert (
            outbox.enqueue(
                db.session,
                recipient_id=people[0],
                kind="assignment_published",
                params=shared,
                dedupe_key="k:1",
            )
            is None
        )
        db.session.rollback()


def test_known_keys_from_the_caller_skip_the_lookup(app: Flask, factory: Factory) -> None:
    person = factory.create_member(name="队员")
    with app.app_context():
        rows = [
            BulkPush(person, "slot_offer", {"offer_id": str(i), **SHIFT}, f"offer:{i}")
            for i in range(3)
        ]
        assert outbox.enqueue_bulk(db.session, rows, existing_keys={"offer:1"}) == 2
        db.session.commit()
        keys = set(db.session.scalars(select(OutboxMessage.dedupe_key)))
        assert keys == {"offer:0", "offer:2"}


@pytest.mark.parametrize(
    "row, error",
    [
        (BulkPush(1, "carrier_pigeon", {}), "carrier_pigeon"),
        (BulkPush(1, "slot_offer", {"offer_id": "1", "post": "岗"}), "date"),
        (BulkPush(1, "slot_offer", {"offer_id": 1, **SHIFT}), "strings"),  # type: ignore[dict-item]
    ],
)
def test_a_push_that_could_never_render_writes_nothing(
    app: Flask, factory: Factory, row: BulkPush, error: str
) -> None:
    person = factory.create_member(name="队员")
    with app.app_context():
        good = BulkPush(person, "slot_offer", {"offer_id": "1", **SHIFT})
        with pytest.raises(ValueError, match=error):
            outbox.enqueue_bulk(
                db.session, [good, BulkPush(person, row.kind, row.params, row.dedupe_key)]
            )
        db.session.rollback()
        assert _counts() == (0, 0)


def test_thousands_share_rendered_texts_and_keep_their_own_ids(
    app: Flask, factory: Factory
) -> None:
    people = [factory.create_member(name=f"队员{i}") for i in range(4)]
    due = datetime.now(UTC) + timedelta(days=2)
    rows = []
    for index in range(2000):
        params = {"assignment_id": str(index), **SHIFT}
        member = people[index % 4]
        rows.append(BulkPush(member, "assignment_published", params, f"a:{index}", None))
        rows.append(BulkPush(member, "shift_reminder", params, f"r:{index}", None, None, due))
    with app.app_context():
        assert outbox.enqueue_bulk(db.session, rows) == 4000
        db.session.commit()
        assert _counts() == (4000, 4000)
        ids = db.session.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.params, InboxItem.data).join(
                InboxItem, InboxItem.outbox_id == OutboxMessage.id
            )
        ).all()
        for key, params, data in ids:
            assert params["assignment_id"] == data["assignment_id"] == key.split(":")[1]
        titles = set(db.session.scalars(select(InboxItem.title)))
        assert titles == {
            "新的排班：东门岗 6月3日（周二） 08:00-12:00",
            "值班提醒：东门岗 08:00 开始",
        }
        kinds = {data["kind"] for _, _, data in ids}
        assert kinds == {"assignment_published", "shift_reminder"}
