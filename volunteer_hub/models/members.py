"""Members, their branches, skills, roles, availability and leave."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from volunteer_hub.extensions import Base
from volunteer_hub.models.federation import Branch, Organization, Town
from volunteer_hub.models.types import UTCDateTime, utcnow


class MemberStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"


class Role(enum.StrEnum):
    VOLUNTEER = "volunteer"
    SQUAD_LEADER = "squad_leader"
    COORDINATOR = "coordinator"
    SECRETARY_GENERAL = "secretary_general"
    ADMIN = "admin"
    GRID_WORKER = "grid_worker"


def enum_column(kind: type[enum.StrEnum], name: str) -> Enum:
    """Enums stored as their values in a VARCHAR with a CHECK, the same on both databases."""
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class MemberBranch(Base):
    __tablename__ = "member_branch"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), primary_key=True
    )
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"), primary_key=True, index=True)
    joined_on: Mapped[date | None] = mapped_column(Date)


class Skill(Base):
    __tablename__ = "skill"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    needs_certificate: Mapped[bool] = mapped_column(Boolean, default=False)


class MemberSkill(Base):
    """A member's skill; `expires_on` is the certificate's end where one applies (first aid)."""

    __tablename__ = "member_skill"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[int] = mapped_column(ForeignKey("skill.id"), primary_key=True, index=True)
    expires_on: Mapped[date | None] = mapped_column(Date)

    skill: Mapped[Skill] = relationship(lazy="joined")


class Member(Base):
    __tablename__ = "member"
    __table_args__ = (
        CheckConstraint("home_lat IS NULL OR (home_lat BETWEEN -90 AND 90)", name="home_lat_range"),
        CheckConstraint(
            "home_lon IS NULL OR (home_lon BETWEEN -180 AND 180)", name="home_lon_range"
        ),
        Index("ix_member_town_status", "town_id", "status"),
        Index("ix_member_home", "home_lat", "home_lon"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # Kept so an authorised officer can verify a person; shown masked to everyone else.
    id_number: Mapped[str | None] = mapped_column(String(24))
    gender: Mapped[str | None] = mapped_column(String(8))
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    home_lat: Mapped[float | None] = mapped_column(Float)
    home_lon: Mapped[float | None] = mapped_column(Float)
    is_core: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[MemberStatus] = mapped_column(
        enum_column(MemberStatus, "member_status"), default=MemberStatus.ACTIVE
    )
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Secret for the calendar feed URL, so calendar apps subscribe without a bearer token.
    calendar_secret: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Bumped when the password changes; access tokens carry it and stop working after.
    token_version: Mapped[int] = mapped_column(Integer, default=0)

    town: Mapped[Town | None] = relationship()
    organization: Mapped[Organization | None] = relationship()
    branches: Mapped[list[Branch]] = relationship(secondary="member_branch", order_by=Branch.id)
    skills: Mapped[list[MemberSkill]] = relationship(cascade="all, delete-orphan")
    roles: Mapped[list[RoleGrant]] = relationship(
        cascade="all, delete-orphan", back_populates="member", foreign_keys="RoleGrant.member_id"
    )


class RoleGrant(Base):
    """A role, scoped to a branch and/or a town where the role is scoped."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("member_id", "role", "branch_id", "town_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branch.id"))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("town.id"))
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="roles", foreign_keys=[member_id])
    branch: Mapped[Branch | None] = relationship()
    town: Mapped[Town | None] = relationship()


class Availability(Base):
    """A weekly window in the federation's time zone in which the member can serve."""

    __tablename__ = "availability"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name="minutes_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_minute: Mapped[int] = mapped_column(SmallInteger)
    end_minute: Mapped[int] = mapped_column(SmallInteger)


class Leave(Base):
    __tablename__ = "leave"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_leave_member_period", "member_id", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefreshToken(Base):
    """One issued refresh token; a family is one sign-in and everything rotated from it."""

    __tablename__ = "refresh_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInCode(Base):
    """A one-time code an officer hands a member (first sign-in of a member added without a
    password, or a forgotten one): with their phone it sets a new password. Only its hash is
    kept; a new code replaces the member's earlier one; wrong tries are counted."""

    __tablename__ = "sign_in_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), unique=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
