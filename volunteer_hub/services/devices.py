"""The member's phones: registration (a token moving to another member moves), removal."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from volunteer_hub.errors import NotFound
from volunteer_hub.models.notifications import Device, Platform
from volunteer_hub.models.types import utcnow

# A member with hundreds of stale registrations would multiply every push; the oldest go.
MAX_DEVICES_PER_MEMBER = 10


def register(session: Session, member_id: int, token: str, platform: str) -> tuple[Device, bool]:
    """Register ``token`` for the member, or refresh it.

    A token already registered to somebody else moves to this member: FCM tokens belong to an
    app installation, and the phone changed hands (or accounts).

    :return: the device and whether it is new to this member (201 rather than 200).
    """
    for _ in range(2):
        now = utcnow()
        device = session.scalar(select(Device).where(Device.token == token).with_for_update())
        if device is not None:
            new_here = device.member_id != member_id
            device.member_id = member_id
            device.platform = Platform(platform)
            device.last_seen_at = now
            _prune(session, member_id)
            session.commit()
            return device, new_here
        try:
            with session.begin_nested():
                device = Device(
                    member_id=member_id,
                    token=token,
                    platform=Platform(platform),
                    created_at=now,
                    last_seen_at=now,
                )
                session.add(device)
        except IntegrityError:
            continue  # registered concurrently by another request: take the update path
        _prune(session, member_id)
        session.commit()
        return device, True
    raise RuntimeError("device registration raced twice")  # pragma: no cover


def _prune(session: Session, member_id: int) -> None:
    session.flush()
    keep = (
        select(Device.id)
        .where(Device.member_id == member_id)
        .order_by(Device.last_seen_at.desc(), Device.id.desc())
        .limit(MAX_DEVICES_PER_MEMBER)
    )
    session.execute(delete(Device).where(Device.member_id == member_id, Device.id.not_in(keep)))


def unregister(session: Session, member_id: int, token: str) -> None:
    """Remove the member's own device.

    :raise NotFound: no such token, or it belongs to somebody else.
    """
    result = session.execute(
        delete(Device).where(Device.token == token, Device.member_id == member_id)
    )
    removed = cast(CursorResult[Any], result).rowcount
    if not removed:
        session.rollback()
        raise NotFound("No such device.")
    session.commit()


def list_own(session: Session, member_id: int) -> list[Device]:
    return list(
        session.scalars(
            select(Device).where(Device.member_id == member_id).order_by(Device.created_at.desc())
        )
    )
