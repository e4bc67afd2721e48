"""Writing pushes: always into the outbox, inside the caller's transaction.

The caller commits; the push then exists exactly when the change that caused it does. The
worker (jobs/) delivers due rows through `notifications`.
"""

from __future__ import annotations

import gc
import json
import string
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, insert, select, text, update
from sqlalchemy.orm import Session

from notifications.messages import new_message_id, render
from notifications.templates import TEMPLATES
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict, NotFound
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit
from volunteer_hub.services.pagination import paginate
from volunteer_hub.services.turns import in_turns


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
    dedupe_key: str | None = None,
) -> int:
    """Cancel pushes not yet sent (reminders of a cancelled assignment, offers of a staffed
    incident, the push of one settled request by its dedupe key) and withdraw their inbox
    items not yet shown. Returns how many were cancelled (no commit)."""
    query = select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING)
    if dedupe_key is not None:
        query = query.where(OutboxMessage.dedupe_key == dedupe_key)
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


# ---------------------------------------------------------------------- bulk pushes


@dataclass(slots=True)
class BulkPush:
    """One row of :func:`enqueue_bulk`: each its own recipient, kind and params.

    Rows may share one ``params`` mapping (a published assignment and its reminders do): it is
    then checked and serialised once. Do not change a mapping while it is being written.
    (Not frozen: a frozen dataclass's __init__ costs twice as much, for 30,000 rows a plan.)
    """

    recipient_id: int
    kind: str
    params: Mapping[str, str]
    dedupe_key: str | None = None
    assignment_id: int | None = None
    incident_id: int | None = None
    deliver_after: datetime | None = None
    # When its inbox item shows (default: when the push is due). A push held for quiet hours
    # shows in the inbox at once.
    visible_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    params_json: str
    title: str
    body: str
    data: dict[str, str]  # without the message id
    data_json_head: str  # the data as JSON up to the message id's value


_BULK_CHUNK = 5000
_COPY_BATCH = 2000
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_OUTBOX_COPY_COLUMNS = (
    "id, message_id, recipient_id, kind, params, status, deliver_after, next_attempt_at, "
    "attempts, dedupe_key, assignment_id, incident_id, created_at"
)
_INBOX_COPY_COLUMNS = "member_id, outbox_id, kind, title, body, data, created_at, visible_at"


def enqueue_bulk(
    session: Session, rows: Sequence[BulkPush], *, existing_keys: Collection[str] | None = None
) -> int:
    """Add many pushes with different params and their inbox items (no commit): the rows
    :func:`enqueue` writes one by one, for thousands at once (publishing a plan).

    Rows whose dedupe key is already used (or repeats an earlier row's) are skipped. Texts are
    rendered once per kind and text params, since thousands of pushes name a few hundred
    shifts; on PostgreSQL the rows are streamed with COPY, ids drawn from the sequence first.

    :param existing_keys: the used dedupe keys these rows could collide with, when the caller
        finds them more cheaply than by key (publishing reads them through the plan's
        assignments); None looks the rows' keys up.
    :return: how many were added.
    :raise notifications.messages.UnknownKindError, MissingParamsError: see :func:`enqueue`;
        nothing is written then.
    """
    used = set(existing_keys) if existing_keys is not None else _used_keys(session, rows)
    fresh = []
    for row in rows:
        if row.dedupe_key is not None:
            if row.dedupe_key in used:
                continue
            used.add(row.dedupe_key)
        fresh.append(row)
    if not fresh:
        return 0
    # Tens of thousands of short-lived strings and dicts, none in a cycle: a collector pass
    # would only walk whatever else the process holds (a solver's Problem is millions of
    # objects), over and over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        prepared = _prepare(fresh)
        now = utcnow()
        message_ids = sorted(new_message_id() for _ in fresh)
        if is_postgresql():
            _copy_bulk(session, fresh, prepared, message_ids, now)
        else:
            _insert_bulk(session, fresh, prepared, message_ids, now)
    finally:
        if collecting:
            gc.enable()
    return len(fresh)


def _used_keys(session: Session, rows: Sequence[BulkPush]) -> set[str]:
    keys = [row.dedupe_key for row in rows if row.dedupe_key is not None]
    used: set[str] = set()
    for start in range(0, len(keys), _BULK_CHUNK):
        used.update(
            key
            for key in session.scalars(
                select(OutboxMessage.dedupe_key).where(
                    OutboxMessage.dedupe_key.in_(keys[start : start + _BULK_CHUNK])
                )
            )
            if key is not None
        )
    return used


@lru_cache(maxsize=64)
def _text_fields(kind: str) -> tuple[str, ...]:
    """The params a kind's title and body use: equal values render equal texts."""
    template = TEMPLATES[kind]
    return tuple(
        sorted(
            {
                name
                for _, name, _, _ in string.Formatter().parse(template.title + template.body)
                if name
            }
        )
    )


# One encoder for all rows: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _prepare(rows: Sequence[BulkPush]) -> list[_Prepared]:
    """Each row's texts and JSON, computed once per params mapping and once per rendered
    text. :raise UnknownKindError, MissingParamsError: from `render`."""
    by_kind: dict[tuple[int, str], _Prepared] = {}  # (params mapping, kind)
    as_json: dict[int, str] = {}  # params mapping -> its JSON, checked
    by_text: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
    prepared = []
    for row in in_turns(rows):  # 30,000 pushes of a large publish: 0.3 s of Python
        ident = (id(row.params), row.kind)
        item = by_kind.get(ident)
        if item is None:
            if row.kind not in TEMPLATES:
                render(row.kind, row.params)  # raises UnknownKindError
            template = TEMPLATES[row.kind]
            params = row.params
            if not all(params.get(name) for name in template.required):
                render(row.kind, params)  # raises MissingParamsError naming what is missing
            params_json = as_json.get(id(params))
            if params_json is None:
                if not all(isinstance(value, str) for value in params.values()):
                    render(row.kind, params)  # raises MissingParamsError: not strings
                params_json = as_json[id(params)] = _dumps(dict(params))
            text_key = (row.kind, tuple(params.get(name, "") for name in _text_fields(row.kind)))
            texts = by_text.get(text_key)
            if texts is None:
                rendered = render(row.kind, params)
                texts = by_text[text_key] = (rendered.title, rendered.body)
            data = {
                key: params.get(key, template.optional.get(key, "")) for key in template.data_keys
            }
            data["kind"] = row.kind
            head = _dumps({**data, "message_id": ""})[:-2]
            item = by_kind[ident] = _Prepared(params_json, *texts, data, head)
        prepared.append(item)
    return prepared


def _insert_bulk(
    session: Session,
    rows: Sequence[BulkPush],
    prepared: Sequence[_Prepared],
    message_ids: Sequence[str],
    now: datetime,
) -> None:
    """SQLite (and any database without COPY): multi-row INSERTs returning the ids."""
    for start in range(0, len(rows), _BULK_CHUNK):
        stop = start + _BULK_CHUNK
        chunk = list(
            zip(rows[start:stop], prepared[start:stop], message_ids[start:stop], strict=True)
        )
        ids = session.execute(
            insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True),
            [
                {
                    "message_id": message_id,
                    "recipient_id": row.recipient_id,
                    "kind": row.kind,
                    "params": dict(row.params),
                    "status": OutboxStatus.PENDING,
                    "deliver_after": row.deliver_after or now,
                    "next_attempt_at": row.deliver_after or now,
                    "attempts": 0,
                    "dedupe_key": row.dedupe_key,
                    "assignment_id": row.assignment_id,
                    "incident_id": row.incident_id,
                    "created_at": now,
                }
                for row, _, message_id in chunk
            ],
        ).scalars()
        session.execute(
            insert(InboxItem),
            [
                {
                    "member_id": row.recipient_id,
                    "outbox_id": outbox_id,
                    "kind": row.kind,
                    "title": item.title,
                    "body": item.body,
                    "data": {**item.data, "message_id": message_id},
                    "created_at": now,
                    "visible_at": row.visible_at or row.deliver_after or now,
                }
                for (row, item, message_id), outbox_id in zip(chunk, ids, strict=True)
            ],
        )


def _copy_field(value: str | None) -> str:
    """A text field in COPY's text format (most need no escaping: check before translating)."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_bulk(
    session: Session,
    rows: Sequence[BulkPush],
    prepared: Sequence[_Prepared],
    message_ids: Sequence[str],
    now: datetime,
) -> None:
    """PostgreSQL: ids from the sequence in one query, then COPY into both tables in the
    session's transaction. Lines are preformatted text (a multi-row INSERT of 30,000 rows
    spends its time building the statement), and a queued writer sends them from a thread
    while the next lines are formatted."""
    from psycopg.copy import QueuedLibpqWriter

    ids = session.scalars(
        text(
            "SELECT nextval(pg_get_serial_sequence('outbox_message', 'id'))"
            " FROM generate_series(1, :n)"
        ),
        {"n": len(rows)},
    ).all()
    times: dict[datetime, str] = {}

    def iso(moment: datetime) -> str:
        found = times.get(moment)
        if found is None:
            found = times[moment] = moment.isoformat()
        return found

    created = iso(now)
    escaped: dict[int, tuple[str, str, str, str]] = {}  # per prepared item
    inbox_lines: list[str] = []
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        # The inbox lines are formatted while the server takes in the outbox rows.
        statement = f"COPY outbox_message ({_OUTBOX_COPY_COLUMNS}) FROM STDIN"
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            batch: list[str] = []
            for row, item, message_id, outbox_id in in_turns(
                zip(rows, prepared, message_ids, ids, strict=True)
            ):
                parts = escaped.get(id(item))
                if parts is None:
                    parts = escaped[id(item)] = (
                        _copy_field(item.params_json),
                        _copy_field(item.title),
                        _copy_field(item.body),
                        _copy_field(item.data_json_head),
                    )
                due = created if row.deliver_after is None else iso(row.deliver_after)
                shown = due if row.visible_at is None else iso(row.visible_at)
                assignment = _NULL if row.assignment_id is None else row.assignment_id
                incident = _NULL if row.incident_id is None else row.incident_id
                batch.append(
                    f"{outbox_id}\t{message_id}\t{row.recipient_id}\t{row.kind}\t{parts[0]}\t"
                    f"pending\t{due}\t{due}\t0\t{_copy_field(row.dedupe_key)}\t{assignment}\t"
                    f"{incident}\t{created}\n"
                )
                inbox_lines.append(
                    f"{row.recipient_id}\t{outbox_id}\t{row.kind}\t{parts[1]}\t{parts[2]}\t"
                    f'{parts[3]}{message_id}"}}\t{created}\t{shown}\n'
                )
                if len(batch) == _COPY_BATCH:
                    copy.write("".join(batch))
                    batch.clear()
            if batch:
                copy.write("".join(batch))
        statement = f"COPY inbox_item ({_INBOX_COPY_COLUMNS}) FROM STDIN"
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for start in range(0, len(inbox_lines), _COPY_BATCH):
                copy.write("".join(inbox_lines[start : start + _COPY_BATCH]))
