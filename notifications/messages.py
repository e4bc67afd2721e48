"""Push payloads as plain values, rendered from ``kind`` + ``params``.

The app's outbox keeps ``kind``, ``params``, the device token and a message id; the worker calls
:func:`build_push` when the row is due. Nothing here touches the network or firebase-admin, so
the API process can import it to validate params when it writes the outbox row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from notifications.templates import TEMPLATES, Priority, Template

# Android and iOS truncate long texts on the lock screen anyway; the full text of an
# announcement lives in the in-app inbox, and FCM rejects messages over 4 KB.
MAX_TITLE_CHARS = 100
MAX_BODY_CHARS = 500

_WEEKDAYS = "一二三四五六日"


@dataclass(frozen=True)
class Push:
    """One notification to one device, ready to hand to a sender."""

    message_id: str
    token: str
    kind: str
    title: str
    body: str
    data: dict[str, str]
    android_priority: Priority
    collapse_key: str | None
    ttl_seconds: int


@dataclass(frozen=True)
class Rendered:
    """The token-independent part of a push, as the template table produces it."""

    kind: str
    title: str
    body: str
    data: dict[str, str]
    android_priority: Priority
    collapse_key: str | None
    ttl_seconds: int


class UnknownKindError(ValueError):
    """Raised for a kind with no template, e.g. an outbox row written by a newer release."""


class MissingParamsError(ValueError):
    """Raised when params lack what the template needs; the outbox row can never be sent."""


def new_message_id() -> str:
    """A fresh id for an outbox row; the phone drops a second push with the same id."""
    return uuid.uuid4().hex


def kinds() -> list[str]:
    """Every kind the registry can render."""
    return sorted(TEMPLATES)


def render(kind: str, params: Mapping[str, str]) -> Rendered:
    """Fill the template of ``kind`` with ``params``.

    :raise UnknownKindError: no template for ``kind``.
    :raise MissingParamsError: a required param is absent or a value is not a string.
    """
    template = TEMPLATES.get(kind)
    if template is None:
        raise UnknownKindError(f"no push template for kind {kind!r}")
    values = _checked_values(template, params)
    return Rendered(
        kind=kind,
        title=_clip(template.title.format_map(values), MAX_TITLE_CHARS),
        body=_clip(template.body.format_map(values).strip(), MAX_BODY_CHARS),
        data={key: values[key] for key in template.data_keys},
        android_priority=template.priority,
        collapse_key=(template.collapse_key.format_map(values) if template.collapse_key else None),
        ttl_seconds=template.ttl_seconds,
    )


def build_push(kind: str, params: Mapping[str, str], *, token: str, message_id: str) -> Push:
    """Render ``kind`` for one device; the entry point of the outbox worker.

    The data payload carries ``kind`` and ``message_id`` besides the template's ids, so the
    phone can route the tap and drop a duplicate delivery.

    :raise UnknownKindError, MissingParamsError: see :func:`render`.
    :raise ValueError: empty token or message id.
    """
    if not token:
        raise ValueError("a push needs a device token")
    if not message_id:
        raise ValueError("a push needs a message id")
    rendered = render(kind, params)
    return Push(
        message_id=message_id,
        token=token,
        kind=kind,
        title=rendered.title,
        body=rendered.body,
        data={**rendered.data, "kind": kind, "message_id": message_id},
        android_priority=rendered.android_priority,
        collapse_key=rendered.collapse_key,
        ttl_seconds=rendered.ttl_seconds,
    )


def shift_params(start: datetime, end: datetime, zone: tzinfo) -> dict[str, str]:
    """``date``, ``start`` and ``end`` as volunteers read them, in the federation's time zone
    (`zone`: the app's configured one; this package does not read the configuration).

    Night shifts cross midnight, so an end on a later day says 次日 rather than a bare time
    that reads as earlier than the start.

    :raise ValueError: a naive datetime (stored times are always UTC-aware).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("shift times must be timezone-aware")
    local_start = start.astimezone(zone)
    local_end = end.astimezone(zone)
    end_text = local_end.strftime("%H:%M")
    if local_end.date() != local_start.date():
        end_text = "次日" + end_text
    return {
        "date": f"{local_start.month}月{local_start.day}日（周{_WEEKDAYS[local_start.weekday()]}）",
        "start": local_start.strftime("%H:%M"),
        "end": end_text,
    }


def assignment_published(
    *, token: str, message_id: str, assignment_id: str, post: str, date: str, start: str, end: str
) -> Push:
    """A volunteer was given a shift in a newly published plan."""
    params = {"assignment_id": assignment_id, "post": post, "date": date, "start": start}
    return build_push(
        "assignment_published", {**params, "end": end}, token=token, message_id=message_id
    )


def assignment_changed(
    *,
    token: str,
    message_id: str,
    assignment_id: str,
    post: str,
    date: str,
    start: str,
    end: str,
    reason: str = "",
) -> Push:
    """A published assignment moved to another post or time."""
    params = {"assignment_id": assignment_id, "post": post, "date": date, "start": start}
    return build_push(
        "assignment_changed",
        {**params, "end": end, "reason": reason},
        token=token,
        message_id=message_id,
    )


def assignment_cancelled(
    *,
    token: str,
    message_id: str,
    assignment_id: str,
    post: str,
    date: str,
    start: str,
    end: str,
    reason: str = "",
) -> Push:
    """A published assignment was withdrawn; the volunteer must not travel to the post."""
    params = {"assignment_id": assignment_id, "post": post, "date": date, "start": start}
    return build_push(
        "assignment_cancelled",
        {**params, "end": end, "reason": reason},
        token=token,
        message_id=message_id,
    )


def shift_reminder(
    *, token: str, message_id: str, assignment_id: str, post: str, date: str, start: str, end: str
) -> Push:
    """Sent ahead of a shift; collapses with earlier reminders for the same assignment."""
    params = {"assignment_id": assignment_id, "post": post, "date": date, "start": start}
    return build_push("shift_reminder", {**params, "end": end}, token=token, message_id=message_id)


def no_show_notice(
    *,
    token: str,
    message_id: str,
    assignment_id: str,
    volunteer: str,
    post: str,
    date: str,
    start: str,
    end: str,
) -> Push:
    """Tells a squad leader that a volunteer did not check in, so attendance gets confirmed."""
    params = {"assignment_id": assignment_id, "volunteer": volunteer, "post": post, "date": date}
    return build_push(
        "no_show_notice",
        {**params, "start": start, "end": end},
        token=token,
        message_id=message_id,
    )


def incident_offer(
    *,
    token: str,
    message_id: str,
    incident_id: str,
    offer_id: str,
    incident_type: str,
    location: str,
    summary: str,
    respond_by: str,
) -> Push:
    """Calls a nearby volunteer out to an incident; high priority, expires in minutes."""
    params = {
        "incident_id": incident_id,
        "offer_id": offer_id,
        "incident_type": incident_type,
        "location": location,
        "summary": summary,
        "respond_by": respond_by,
    }
    return build_push("incident_offer", params, token=token, message_id=message_id)


def offer_withdrawn(
    *,
    token: str,
    message_id: str,
    incident_id: str,
    offer_id: str,
    incident_type: str,
    location: str,
) -> Push:
    """The offer is no longer open; replaces the offer on a phone that has not received it."""
    params = {
        "incident_id": incident_id,
        "offer_id": offer_id,
        "incident_type": incident_type,
        "location": location,
    }
    return build_push("offer_withdrawn", params, token=token, message_id=message_id)


def incident_escalated(
    *,
    token: str,
    message_id: str,
    incident_id: str,
    incident_type: str,
    location: str,
    minutes: str,
    offers: str,
) -> Push:
    """Tells a coordinator that nobody accepted the offers in time."""
    params = {
        "incident_id": incident_id,
        "incident_type": incident_type,
        "location": location,
        "minutes": minutes,
        "offers": offers,
    }
    return build_push("incident_escalated", params, token=token, message_id=message_id)


def announcement(
    *, token: str, message_id: str, announcement_id: str, title: str, body: str
) -> Push:
    """A federation-wide or branch notice; the full text is in the in-app inbox."""
    params = {"announcement_id": announcement_id, "title": title, "body": body}
    return build_push("announcement", params, token=token, message_id=message_id)


def _checked_values(template: Template, params: Mapping[str, str]) -> dict[str, str]:
    missing = [name for name in template.required if not params.get(name)]
    if missing:
        raise MissingParamsError(f"{template.kind}: missing params {', '.join(missing)}")
    values = {**template.optional, **params}
    not_text = sorted(name for name, value in values.items() if not isinstance(value, str))
    if not_text:
        raise MissingParamsError(f"{template.kind}: params must be strings: {', '.join(not_text)}")
    return values


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
