"""Attendance, the append-only hours ledger, and idempotency records.

An attendance is one check-in and check-out against an assignment. The minutes it earns are
written to the ledger (`HoursEntry`), which is never edited: a correction or reversal is a new
entry that references the one it corrects, so every report can be explained entry by entry.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from volunteer_hub.extensions import Base
from volunteer_hub.models.members import enum_column
from volunteer_hub.models.types import JSONType, UTCDateTime, utcnow


class AttendanceStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    AUTO_CLOSED = "auto_closed"
    CONFIRMED = "confirmed"


class HoursKind(enum.StrEnum):
    ATTENDANCE = "attendance"
    CORRECTION = "correction"
    MANUAL = "manual"
    REVERSAL = "reversal"
    INCIDENT = "incident"


class Attendance(Base):
    """One check-in and check-out against one assignment (unique: a retry storm makes one)."""

    __tablename__ = "attendance"
    __table_args__ = (
        CheckConstraint("check_in_lat IS NULL OR (check_in_lat BETWEEN -90 AND 90)", name="in_lat"),
        CheckConstraint(
            "check_in_lon IS NULL OR (check_in_lon BETWEEN -180 AND 180)", name="in_lon"
        ),
        CheckConstraint("check_out_at IS NULL OR check_out_at >= check_in_at", name="out_after_in"),
        CheckConstraint("service_minutes IS NULL OR service_minutes >= 0", name="minutes_positive"),
        Index("ix_attendance_open", "status", "check_in_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    check_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    check_in_lat: Mapped[float | None] = mapped_column(Float)
    check_in_lon: Mapped[float | None] = mapped_column(Float)
    check_in_accuracy_m: Mapped[float | None] = mapped_column(Float)
    check_in_client_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_in_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_out_lat: Mapped[float | None] = mapped_column(Float)
    check_out_lon: Mapped[float | None] = mapped_column(Float)
    check_out_accuracy_m: Mapped[float | None] = mapped_column(Float)
    check_out_client_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_out_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Either tap was recorded offline and arrived later; reviewers look at these first.
    synced_late: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[AttendanceStatus] = mapped_column(
        enum_column(AttendanceStatus, "attendance_status"), default=AttendanceStatus.OPEN
    )
    service_minutes: Mapped[int | None] = mapped_column(Integer)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HoursEntry(Base):
    """One line of the service-hours ledger; append-only.

    `service_day` and `service_month` are the federation-local date of `occurred_at`, stored so
    that reports filter and group by plain dates on both databases and use the indexes.
    `turns` is what the entry adds to the count of turns (人次): 1 for an attendance credit or an
    incident response, -1 for the reversal of one, 0 for corrections and manual awards.
    """

    __tablename__ = "hours_entry"
    __table_args__ = (
        CheckConstraint("turns BETWEEN -1 AND 1", name="turns_range"),
        # Month-by-branch reports read only this index (covering: no table access).
        # service_day is in it so the date-range filter needs no heap access either.
        Index(
            "ix_hours_branch_month",
            "branch_id",
            "service_month",
            "member_id",
            "service_day",
            "minutes",
            "turns",
        ),
        Index("ix_hours_day_branch", "service_day", "branch_id"),
        Index("ix_hours_member_day", "member_id", "service_day"),
        Index("ix_hours_references", "references_id"),
        Index("ix_hours_assignment", "assignment_id"),
        Index("ix_hours_incident", "incident_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[HoursKind] = mapped_column(enum_column(HoursKind, "hours_kind"))
    minutes: Mapped[int] = mapped_column(Integer)
    turns: Mapped[int] = mapped_column(SmallInteger, default=0)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    squad_id: Mapped[int | None] = mapped_column(ForeignKey("squad.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    service_day: Mapped[date] = mapped_column(Date)
    service_month: Mapped[date] = mapped_column(Date)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id"))
    attendance_id: Mapped[int | None] = mapped_column(ForeignKey("attendance.id"))
    # The incident table comes in a later migration; the id is kept without a foreign key.
    incident_id: Mapped[int | None] = mapped_column(Integer)
    references_id: Mapped[int | None] = mapped_column(ForeignKey("hours_entry.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HoursRollup(Base):
    """The ledger summed per (federation-local year, branch, member, town, squad), one column
    pair per month; kept exact by `services.hours.add_entry` in the same transaction as every
    ledger entry, so `sum(minutes_<m>)` over any rows equals the ledger's sum for that month.

    Why wide: a year of a 40,000-member federation has about as many (member, month) cells as
    ledger entries, so a narrow per-month rollup would scan nearly as much as the ledger. One
    row per member and year is an order of magnitude fewer rows, and still per member, which
    the `members` count (members with positive net minutes in a group) needs.

    `town_id` and `squad_id` are 0 when the entry has none, so that they can be part of the
    primary key that `INSERT ... ON CONFLICT DO UPDATE` matches (NULLs never conflict).
    """

    __tablename__ = "hours_rollup"
    __table_args__ = (Index("ix_hours_rollup_year_member", "year", "member_id"),)

    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    branch_id: Mapped[int] = mapped_column(
        ForeignKey("branch.id"), primary_key=True, autoincrement=False
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("member.id"), primary_key=True, autoincrement=False
    )
    town_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    squad_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    minutes_1: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_2: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_3: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_4: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_5: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_6: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_7: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_8: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_9: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_10: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_11: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    minutes_12: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_1: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_2: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_3: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_4: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_5: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_6: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_7: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_8: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_9: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_10: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_11: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    turns_12: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


SPAN_MONTHS = 24

# The ledger per (year Y, branch, member) over the two years Y-1 and Y, as running totals:
# `minutes_j` is the sum of months 1..j of the window (1 = January of Y-1, 13 = January of Y).
# Any range inside two calendar years then reads one row per branch and member, and a range's
# sum is a difference of two columns. Kept exact by `services.hours_rollup.bump` in the same
# transaction as every ledger entry (an entry of year Y lands in rows Y and Y+1). A Core table:
# nothing loads it as objects, reports read its columns by name.
hours_span = Table(
    "hours_span",
    Base.metadata,
    Column("year", SmallInteger, primary_key=True, autoincrement=False),
    Column("branch_id", Integer, ForeignKey("branch.id"), primary_key=True, autoincrement=False),
    Column("member_id", Integer, ForeignKey("member.id"), primary_key=True, autoincrement=False),
    *[
        Column(f"{kind}_{j}", Integer, nullable=False, server_default="0")
        for kind in ("minutes", "turns")
        for j in range(1, SPAN_MONTHS + 1)
    ],
)

# The same running totals per member alone (every branch), so that federation-wide totals and
# the member report read one row per member with no grouping.
hours_span_member = Table(
    "hours_span_member",
    Base.metadata,
    Column("year", SmallInteger, primary_key=True, autoincrement=False),
    Column("member_id", Integer, ForeignKey("member.id"), primary_key=True, autoincrement=False),
    *[
        Column(f"{kind}_{j}", Integer, nullable=False, server_default="0")
        for kind in ("minutes", "turns")
        for j in range(1, SPAN_MONTHS + 1)
    ],
)


class IdempotencyRecord(Base):
    """The first response to a member's `Idempotency-Key`, replayed for every repeat."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("member_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
