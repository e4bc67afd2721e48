"""Devices, the push outbox and the in-app inbox.

A push is first an outbox row written in the same transaction as the change that causes it;
the worker delivers due rows. The inbox keeps every message so nothing depends on the phone.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from volunteer_hub.extensions import Base
from volunteer_hub.models.members import enum_column
from volunteer_hub.models.types import JSONType, UTCDateTime, utcnow


class Platform(enum.StrEnum):
    ANDROID = "android"
    IOS = "ios"


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"


class AnnouncementStatus(enum.StrEnum):
    FANNING_OUT = "fanning_out"
    DONE = "done"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NO_DEVICE = "no_device"


class Device(Base):
    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(4096), unique=True)
    platform: Mapped[Platform] = mapped_column(enum_column(Platform, "platform"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """One push to one member (all their devices); `params` render the kind's template."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_assignment", "assignment_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[OutboxStatus] = mapped_column(
        enum_column(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    # A reminder waits until deliver_after; next_attempt_at moves forward on retries.
    deliver_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    assignment_id: Mapped[int | None] = mapped_column(Integer)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboxItem(Base):
    """What the member was told, readable in the app whatever happened to the push."""

    __tablename__ = "inbox_item"
    __table_args__ = (Index("ix_inbox_member_visible", "member_id", "visible_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_message.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A reminder appears in the inbox when it is due, not when it was scheduled.
    visible_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxDelivery(Base):
    """A device that already has an outbox row's push, so a retry of the row skips it.

    Written only for rows that stay pending after an attempt (some device must be retried);
    a row settled in one attempt needs no per-device record, which keeps the common path to
    one UPDATE per batch.
    """

    __tablename__ = "outbox_delivery"
    __table_args__ = (UniqueConstraint("outbox_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_message.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    fcm_name: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Announcement(Base):
    """A notice to every active member of a branch, a town, or a branch's squad in a town.

    Fan-out writes one outbox row per member in chunks; `cursor` is the last member id done,
    so a fan-out cut short (a crashed request) is finished by the worker without duplicates.
    """

    __tablename__ = "announcement"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[AnnouncementStatus] = mapped_column(
        enum_column(AnnouncementStatus, "announcement_status"),
        default=AnnouncementStatus.FANNING_OUT,
    )
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobTick(Base):
    """The last tick a once-per-tick job ran, checked under its advisory lock."""

    __tablename__ = "job_tick"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_tick: Mapped[datetime] = mapped_column(UTCDateTime)
