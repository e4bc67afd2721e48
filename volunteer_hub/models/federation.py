"""The federation's fixed structure: branches, towns, squads and affiliated organisations."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from volunteer_hub.extensions import Base

BRANCH_CODES = ("mediation", "hazard", "patrol", "rescue", "cyber", "assistance", "publicity")


class Branch(Base):
    __tablename__ = "branch"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))


class Town(Base):
    __tablename__ = "town"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class Squad(Base):
    """A branch's squad in one town; the pair (branch, town) is unique."""

    __tablename__ = "squad"
    __table_args__ = (UniqueConstraint("branch_id", "town_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branch.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("town.id"), index=True)
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))

    branch: Mapped[Branch] = relationship()
    town: Mapped[Town] = relationship()


class Organization(Base):
    """An affiliated professional organisation (mediation centre, rescue centre, ...)."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branch.id"))
