"""Incidents and the offers that call volunteers out to them.

An incident's timeline (reported, each wave, each answer, staffed, escalated, resolved) is kept
in the audit log under object_type "incident", so one table answers "who did what, when".
A responder is an accepted offer: the offer row carries the arrival, the departure and the
minutes credited, so an incident's people and its call-outs are one list.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from volunteer_hub.extensions import Base
from volunteer_hub.models.federation import Branch, Town
from volunteer_hub.models.members import Member, enum_column
from volunteer_hub.models.types import JSONType, UTCDateTime, utcnow


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    DISPATCHING = "dispatching"
    STAFFED = "staffed"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


# Incidents that still take answers; resolved and cancelled ones are closed for good.
LIVE_STATUSES = (
    IncidentStatus.OPEN,
    IncidentStatus.DISPATCHING,
    IncidentStatus.STAFFED,
    IncidentStatus.ESCALATED,
)


class Urgency(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class OfferStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class Incident(Base):
    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
        CheckConstraint("needed BETWEEN 1 AND 50", name="needed_range"),
        CheckConstraint("accepted_count >= 0", name="accepted_not_negative"),
        # The wave job scans due incidents; coordinators list by branch and status.
        Index("ix_incident_due", "status", "next_wave_at"),
        Index("ix_incident_branch_status", "branch_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    needed: Mapped[int] = mapped_column(SmallInteger)
    skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    urgency: Mapped[Urgency] = mapped_column(
        enum_column(Urgency, "incident_urgency"), default=Urgency.NORMAL
    )
    status: Mapped[IncidentStatus] = mapped_column(
        enum_column(IncidentStatus, "incident_status"), default=IncidentStatus.OPEN
    )
    reporter_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    # Kept on the row (not counted from offers) so that the accept race is decided by one
    # locked row: the incident's.
    accepted_count: Mapped[int] = mapped_column(SmallInteger, default=0)
    wave: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_wave_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    staffed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    outcome: Mapped[str | None] = mapped_column(String(24))
    outcome_note: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    branch: Mapped[Branch] = relationship()
    town: Mapped[Town | None] = relationship()
    offers: Mapped[list[Offer]] = relationship(
        back_populates="incident", order_by="Offer.id", cascade="all, delete-orphan"
    )


class Offer(Base):
    """One call-out of one volunteer; unique per (incident, member), so nobody is asked twice."""

    __tablename__ = "incident_offer"
    __table_args__ = (
        UniqueConstraint("incident_id", "member_id"),
        Index("ix_incident_offer_member_status", "member_id", "status"),
        Index("ix_incident_offer_open_expiry", "status", "expires_at"),
        CheckConstraint(
            "arrived_lat IS NULL OR (arrived_lat BETWEEN -90 AND 90)", name="arrived_lat_range"
        ),
        CheckConstraint(
            "arrived_lon IS NULL OR (arrived_lon BETWEEN -180 AND 180)", name="arrived_lon_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    wave: Mapped[int] = mapped_column(SmallInteger)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    # Set when a coordinator named the volunteer rather than the ranking choosing them.
    dispatched_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    status: Mapped[OfferStatus] = mapped_column(
        enum_column(OfferStatus, "offer_status"), default=OfferStatus.OPEN
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Responder fields, meaningful once accepted.
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrived_lat: Mapped[float | None] = mapped_column(Float)
    arrived_lon: Mapped[float | None] = mapped_column(Float)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    minutes_credited: Mapped[int | None] = mapped_column(Integer)

    incident: Mapped[Incident] = relationship(back_populates="offers")
    member: Mapped[Member] = relationship(foreign_keys=[member_id])
