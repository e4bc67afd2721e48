"""Writing pushes: always into the outbox, inside the caller's transaction.

The caller commits; the push then exists exactly when the change that caused it does. The
worker (jobs/) delivers due rows through `notifications`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, insert, select, update
from sqlalchemy.orm import Session

from notifications.messages import new_message_id, render
from volunteer_hub.errors import Conflict, NotFound
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit
from volunteer_hub.services.pagination import paginate

# Reminders before a shift starts, unless the caller (plan publishing) passes its own.
DEFAULT_REMINDERS_BEFORE = (timedelta(hours=24), timedelta(hours=2))


def enqueue(
    session: Session,
    *,
    recipient_id: int,
    kind: str,
    params: Mapping[str, str],
    deliver_after: datetime | None = None,
    dedupe_key: str | None = None,
    assignment_id: int | None = None,
    incident_id: int | None = None,
) -> OutboxMessage | None:
    """Add a push and its inbox item to the session (no commit).

    A `dedupe_key` already used returns None and adds nothing, so a retried operation never
    tells a volunteer twice.

    :raise notifications.messages.UnknownKindError, MissingParamsError: a push that could
        never be rendered is refused now rather than failing in the worker.
    """
    if dedupe_key is not None and session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    ):
        return None
    rendered = render(kind, params)
    now = utcnow()
    due = deliver_after or now
    message = OutboxMessage(
        message_id=new_message_id(),
        recipient_id=recipient_id,
        kind=kind,
        params=dict(params),
        deliver_after=due,
        next_attempt_at=due,
        dedupe_key=dedupe_key,
        assignment_id=assignment_id,
        incident_id=incident_id,
        status=OutboxStatus.PENDING,
        attempts=0,
        created_at=now,
    )
    session.add(message)
    session.flush()
    session.add(
        InboxItem(
            member_id=recipient_id,
            outbox_id=message.id,
            kind=kind,
            title=rendered.title,
            body=rendered.body,
            data={**rendered.data, "kind": kind, "message_id": message.message_id},
            created_at=now,
            visible_at=due,
        )
    )
    return message


def cancel_pending(
    session: Session,
    *,
    assignment_id: int | None = None,
    incident_id: int | None = None,
    recipient_id: int | None = None,
    kinds: Iterable[str] | None = None,
) -> int:
    """Cancel pushes not yet sent (reminders of a cancelled assignment, offers of a staffed
    incident) and withdraw their inbox items. Returns how many were cancelled (no commit)."""
    query = select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING)
    if assignment_id is not None:
        query = query.where(OutboxMessage.assignment_id == assignment_id)
    if incident_id is not None:
        query = query.where(OutboxMessage.incident_id == incident_id)
    if recipient_id is not None:
        query = query.where(OutboxMessage.recipient_id == recipient_id)
    if kinds is not None:
        query = query.where(OutboxMessage.kind.in_(list(kinds)))
    ids = list(session.scalars(query))
    if not ids:
        return 0
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.CANCELLED)
    )
    now = utcnow()
    session.execute(
        update(InboxItem)
        .where(InboxItem.outbox_id.in_(ids), InboxItem.visible_at > now)
        .values(withdrawn_at=now)
    )
    return len(ids)


def enqueue_many(
    session: Session,
    *,
    recipient_ids: Sequence[int],
    kind: str,
    params: Mapping[str, str],
    dedupe_prefix: str,
    deliver_after: datetime | None = None,
    inbox_body: str | None = None,
) -> int:
    """Add the same push for many members in two bulk INSERTs (no commit).

    Each row's dedupe key is ``{dedupe_prefix}:{member id}``; members who already have one
    are skipped, so a fan-out resumed after a crash never tells anyone twice. ``inbox_body``
    keeps a text longer than a push may carry (an announcement) whole in the inbox.

    :return: how many rows were added.
    :raise notifications.messages.UnknownKindError, MissingParamsError: see :func:`enqueue`.
    """
    rendered = render(kind, params)
    keys = {f"{dedupe_prefix}:{member_id}": member_id for member_id in recipient_ids}
    if not keys:
        return 0
    existing = set(
        session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys)))
    )
    now = utcnow()
    due = deliver_after or now
    rows = [
        {
            "message_id": new_message_id(),
            "recipient_id": member_id,
            "kind": kind,
            "params": dict(params),
            "status": OutboxStatus.PENDING,
            "deliver_after": due,
            "next_attempt_at": due,
            "attempts": 0,
            "dedupe_key": key,
            "created_at": now,
        }
        for key, member_id in keys.items()
        if key not in existing
    ]
    if not rows:
        return 0
    added = session.execute(
        insert(OutboxMessage).returning(
            OutboxMessage.id,
            OutboxMessage.recipient_id,
            OutboxMessage.message_id,
            sort_by_parameter_order=True,
        ),
        rows,
    ).all()
    session.execute(
        insert(InboxItem),
        [
            {
                "member_id": recipient_id,
                "outbox_id": outbox_id,
                "kind": kind,
                "title": rendered.title,
                "body": inbox_body if inbox_body is not None else rendered.body,
                "data": {**rendered.data, "kind": kind, "message_id": message_id},
                "created_at": now,
                "visible_at": due,
            }
            for outbox_id, recipient_id, message_id in added
        ],
    )
    return len(added)


def schedule_reminders(
    session: Session,
    *,
    recipient_id: int,
    assignment_id: int,
    params: Mapping[str, str],
    starts_at: datetime,
    before: Iterable[timedelta] = DEFAULT_REMINDERS_BEFORE,
    now: datetime | None = None,
) -> list[OutboxMessage]:
    """Queue ``shift_reminder`` pushes ``before`` the shift starts (no commit).

    Reminders whose time has already passed are not queued (a plan published 3 hours ahead
    gets only the 2-hour reminder). The dedupe key names the assignment, its start and the
    lead time, so publishing twice queues nothing new while a moved shift gets fresh ones;
    cancel the old ones with ``cancel_pending(assignment_id=..., kinds=["shift_reminder"])``.

    :param params: the ``shift_reminder`` params (assignment_id, post, date, start, end).
    :return: the rows added.
    """
    current = now or utcnow()
    added = []
    for lead in sorted(before, reverse=True):
        due = starts_at - lead
        if due <= current:
            continue
        message = enqueue(
            session,
            recipient_id=recipient_id,
            kind="shift_reminder",
            params=params,
            deliver_after=due,
            dedupe_key=(
                f"reminder:{assignment_id}:{int(starts_at.timestamp())}:{int(lead.total_seconds())}"
            ),
            assignment_id=assignment_id,
        )
        if message is not None:
            added.append(message)
    return added


# ---------------------------------------------------------------------- the inbox


def _visible_inbox(member_id: int, now: datetime) -> Select[InboxItem]:
    """What the member was sent: due (a reminder shows when it is sent) and not withdrawn."""
    return select(InboxItem).where(
        InboxItem.member_id == member_id,
        InboxItem.visible_at <= now,
        InboxItem.withdrawn_at.is_(None),
    )


def inbox_page(
    session: Session, member_id: int, *, page: int, page_size: int, unread_only: bool = False
) -> dict[str, Any]:
    """The member's inbox, newest first, with the unread count.

    :return: the page envelope plus ``unread``.
    """
    now = utcnow()
    query = _visible_inbox(member_id, now)
    if unread_only:
        query = query.where(InboxItem.read_at.is_(None))
    result = paginate(
        session, query.order_by(InboxItem.visible_at.desc(), InboxItem.id.desc()), page, page_size
    )
    result["unread"] = session.scalar(
        select(func.count()).select_from(
            _visible_inbox(member_id, now).where(InboxItem.read_at.is_(None)).subquery()
        )
    )
    return result


def mark_read(session: Session, member_id: int, item_id: int) -> InboxItem:
    """Mark one of the member's items read; reading twice keeps the first time.

    :raise NotFound: no such item, somebody else's, not yet due, or withdrawn.
    """
    item = session.scalar(_visible_inbox(member_id, utcnow()).where(InboxItem.id == item_id))
    if item is None:
        session.rollback()
        raise NotFound("No such message.")
    if item.read_at is None:
        item.read_at = utcnow()
    session.commit()
    return item


def mark_all_read(session: Session, member_id: int) -> int:
    """Mark every visible unread item read. :return: how many were marked."""
    now = utcnow()
    result = session.execute(
        update(InboxItem)
        .where(
            InboxItem.member_id == member_id,
            InboxItem.visible_at <= now,
            InboxItem.withdrawn_at.is_(None),
            InboxItem.read_at.is_(None),
        )
        .values(read_at=now)
    )
    session.commit()
    return int(cast(CursorResult[Any], result).rowcount or 0)


# ---------------------------------------------------------------------- operators' view


def outbox_page(
    session: Session, *, status: str | None, page: int, page_size: int
) -> dict[str, Any]:
    """Outbox rows, newest first, optionally of one status (``failed`` for the operators)."""
    query = select(OutboxMessage)
    if status is not None:
        query = query.where(OutboxMessage.status == OutboxStatus(status))
    return paginate(session, query.order_by(OutboxMessage.id.desc()), page, page_size)


def requeue_failed(session: Session, actor_id: int, outbox_id: int) -> OutboxMessage:
    """Give a failed push another round of attempts (after FCM or a token was fixed).

    :raise NotFound: no such row.
    :raise Conflict: the row is not failed.
    """
    message = session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == outbox_id).with_for_update()
    )
    if message is None:
        session.rollback()
        raise NotFound("No such outbox message.")
    if message.status != OutboxStatus.FAILED:
        session.rollback()
        raise Conflict(f"Only failed messages are retried; this one is {message.status.value}.")
    before = {"status": message.status.value, "attempts": message.attempts}
    now = utcnow()
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    message.claimed_by = None
    message.claimed_until = None
    audit.record(
        session,
        actor_id,
        "outbox.requeue",
        "outbox_message",
        message.id,
        before=before,
        after={"status": "pending", "attempts": 0},
        reason=message.last_error,
    )
    session.commit()
    return message
