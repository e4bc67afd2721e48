"""Writing pushes: always into the outbox, inside the caller's transaction.

The caller commits; the push then exists exactly when the change that caused it does. The
worker (jobs/) delivers due rows through `notifications`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notifications.messages import new_message_id, render
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.types import utcnow


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
