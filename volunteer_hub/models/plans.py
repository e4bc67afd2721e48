"""Posts, shift templates, plans, shifts, solve runs, assignments and slot offers.

An assignment carries its shift's `starts_at`/`ends_at` (denormalised) so that PostgreSQL can
enforce "no member on two overlapping active assignments" with an exclusion constraint over
one table; the constraint itself is PostgreSQL-only DDL in migration 0003. Swap requests
between two volunteers came with migration 0007.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from volunteer_hub.extensions import Base
from volunteer_hub.models.federation import Branch, Town
from volunteer_hub.models.members import Member, enum_column
from volunteer_hub.models.types import JSONType, UTCDateTime, utcnow


class PostKind(enum.StrEnum):
    POINT = "point"
    ROUTE = "route"


class ShiftKind(enum.StrEnum):
    DAY = "day"
    NIGHT = "night"


class PlanStatus(enum.StrEnum):
    DRAFT = "draft"
    SOLVING = "solving"
    SOLVED = "solved"
    PUBLISHED = "published"


class SolveRunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AssignmentStatus(enum.StrEnum):
    PROPOSED = "proposed"
    PUBLISHED = "published"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# The statuses that hold a volunteer's time: the exclusion constraint covers exactly these.
ACTIVE_STATUSES = (AssignmentStatus.PUBLISHED, AssignmentStatus.ACCEPTED)


class AssignmentSource(enum.StrEnum):
    SOLVER = "solver"
    MANUAL = "manual"
    OFFER = "offer"


class SlotOfferStatus(enum.StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


class Post(Base):
    """A place or route a shift covers, with the radius a check-in must fall within."""

    __tablename__ = "post"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
        CheckConstraint("radius_m > 0", name="radius_positive"),
        Index("ix_post_branch_town", "branch_id", "town_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int] = mapped_column(ForeignKey("town.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[int] = mapped_column(Integer)
    kind: Mapped[PostKind] = mapped_column(enum_column(PostKind, "post_kind"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    branch: Mapped[Branch] = relationship()
    town: Mapped[Town] = relationship()


class ShiftTemplate(Base):
    """A weekly need at a post: local start and end times (an end before the start crosses
    midnight), head count and skills."""

    __tablename__ = "shift_template"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("headcount > 0", name="headcount_positive"),
        CheckConstraint("start_time <> end_time", name="not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    kind: Mapped[ShiftKind] = mapped_column(enum_column(ShiftKind, "shift_kind"))
    headcount: Mapped[int] = mapped_column(Integer)
    skills: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    leader_required: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    post: Mapped[Post] = relationship()


class Plan(Base):
    """One branch's shifts (optionally one town's) over an inclusive date range."""

    __tablename__ = "plan"
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="ends_after_start"),
        Index("ix_plan_branch_period", "branch_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    name: Mapped[str] = mapped_column(String(100))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    status: Mapped[PlanStatus] = mapped_column(
        enum_column(PlanStatus, "plan_status"), default=PlanStatus.DRAFT
    )
    # Bumped on every publish that changed something; push dedupe keys carry it.
    version: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    branch: Mapped[Branch] = relationship()


class Shift(Base):
    __tablename__ = "shift"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("headcount > 0", name="headcount_positive"),
        Index("ix_shift_plan_start", "plan_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[ShiftKind] = mapped_column(enum_column(ShiftKind, "shift_kind"))
    headcount: Mapped[int] = mapped_column(Integer)
    skills: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    leader_required: Mapped[bool] = mapped_column(Boolean, default=False)

    post: Mapped[Post] = relationship()


class SolveRun(Base):
    """One request to solve a plan, claimed and run by a worker."""

    __tablename__ = "solve_run"
    __table_args__ = (
        Index("ix_solve_run_status", "status", "id"),
        Index("ix_solve_run_plan", "plan_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    status: Mapped[SolveRunStatus] = mapped_column(
        enum_column(SolveRunStatus, "solve_run_status"), default=SolveRunStatus.QUEUED
    )
    time_limit_s: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    filled_slots: Mapped[int | None] = mapped_column(Integer)
    total_slots: Mapped[int | None] = mapped_column(Integer)
    solver_status: Mapped[str | None] = mapped_column(String(24))
    objective: Mapped[int | None] = mapped_column(BigInteger)
    bound: Mapped[int | None] = mapped_column(BigInteger)
    wall_s: Mapped[float | None] = mapped_column(Float)
    shortfalls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class Assignment(Base):
    """One volunteer on one shift."""

    __tablename__ = "assignment"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_assignment_member_start", "member_id", "starts_at"),
        Index("ix_assignment_plan_status", "plan_id", "status"),
        Index("ix_assignment_shift", "shift_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    status: Mapped[AssignmentStatus] = mapped_column(
        enum_column(AssignmentStatus, "assignment_status"), default=AssignmentStatus.PROPOSED
    )
    source: Mapped[AssignmentSource] = mapped_column(
        enum_column(AssignmentSource, "assignment_source"), default=AssignmentSource.SOLVER
    )
    # Copies of the shift's times as last published; a moved shift differs until re-published.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # An active assignment the next publish will cancel (dropped by a re-solve or removed).
    pending_removal: Mapped[bool] = mapped_column(Boolean, default=False)
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    shift: Mapped[Shift] = relationship()
    member: Mapped[Member] = relationship()

    @classmethod
    def taken_over(
        cls,
        plan_id: int,
        shift_id: int,
        member_id: int,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
    ) -> Assignment:
        """A published, accepted assignment for someone who takes a place over from another
        (an accepted replacement offer, an approved swap): nothing left to answer."""
        return cls(
            plan_id=plan_id,
            shift_id=shift_id,
            member_id=member_id,
            status=AssignmentStatus.ACCEPTED,
            source=AssignmentSource.OFFER,
            starts_at=starts_at,
            ends_at=ends_at,
            pending_removal=False,
            published_at=now,
            responded_at=now,
        )


class SlotOffer(Base):
    """A freed slot offered to a ranked replacement; the first to accept takes it."""

    __tablename__ = "slot_offer"
    __table_args__ = (Index("ix_slot_offer_member_status", "member_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    declined_assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), index=True
    )
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[SlotOfferStatus] = mapped_column(
        enum_column(SlotOfferStatus, "slot_offer_status"), default=SlotOfferStatus.OPEN
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    shift: Mapped[Shift] = relationship()


class SwapStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    # Both agreed but it could not be made: a hard rule, the cut-off, or a shift changed.
    REFUSED = "refused"


class SwapRequest(Base):
    """A volunteer asks another to take their shift, in exchange for one of the other's shifts
    of the same plan (`target_assignment_id`) or as a plain hand-over (None). Approved, and
    made, when the other accepts and every hard rule still holds."""

    __tablename__ = "swap_request"
    __table_args__ = (
        CheckConstraint("requester_id <> target_id", name="not_self"),
        Index("ix_swap_request_requester", "requester_id", "id"),
        Index("ix_swap_request_target", "target_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    requester_assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    target_assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[SwapStatus] = mapped_column(
        enum_column(SwapStatus, "swap_status"), default=SwapStatus.PENDING
    )
    message: Mapped[str | None] = mapped_column(String(500))
    # Why a swap both agreed to was not made; the checker's violations when a rule broke.
    refusal: Mapped[str | None] = mapped_column(Text)
    violations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # The assignments the approved swap created (the old ones are cancelled).
    requester_new_assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment.id", ondelete="SET NULL")
    )
    target_new_assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    requester: Mapped[Member] = relationship(foreign_keys=[requester_id])
    target: Mapped[Member] = relationship(foreign_keys=[target_id])
    requester_assignment: Mapped[Assignment] = relationship(foreign_keys=[requester_assignment_id])
    target_assignment: Mapped[Assignment | None] = relationship(foreign_keys=[target_assignment_id])
