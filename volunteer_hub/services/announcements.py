"""Announcements to a branch, a town, or one branch in one town, fanned out through the outbox.

The announcement row is committed first (with its audit row); members are then added in
chunks of ``CHUNK`` in their own transactions, each under a lock on the announcement, with a
dedupe key per (announcement, member). A fan-out cut short is finished by the worker
(:func:`resume_stale`) without telling anybody twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from volunteer_hub.auth.policy import Actor, can_announce, may_announce_at_all, require
from volunteer_hub.errors import NotFound, ValidationFailed
from volunteer_hub.models import Branch, Member, MemberBranch, MemberStatus, Town
from volunteer_hub.models.notifications import Announcement, AnnouncementStatus
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, outbox

CHUNK = 1000
STALE_AFTER = timedelta(minutes=1)


def create(
    session: Session,
    actor: Actor,
    *,
    title: str,
    body: str,
    branch_code: str | None,
    town_id: int | None,
    chunk_size: int = CHUNK,
) -> Announcement:
    """Record an announcement and fan it out to every active member it addresses.

    :return: the announcement, ``status`` ``done`` with its ``recipients`` count.
    :raise Forbidden: the actor may not announce to that audience.
    :raise ValidationFailed: unknown branch or town.
    """
    require(
        may_announce_at_all(actor), "Only coordinators, the secretary-general and admins announce."
    )
    branch_id = None
    if branch_code is not None:
        branch_id = session.scalar(select(Branch.id).where(Branch.code == branch_code))
        if branch_id is None:
            raise ValidationFailed("No such branch.", errors={"branch": ["Unknown branch code."]})
    if town_id is not None and session.get(Town, town_id) is None:
        raise ValidationFailed("No such town.", errors={"town": ["Unknown town."]})
    require(
        can_announce(actor, branch_id, town_id),
        "You may announce only to the branches (and towns) you coordinate.",
    )
    now = utcnow()
    announcement = Announcement(
        author_id=actor.member_id,
        branch_id=branch_id,
        town_id=town_id,
        title=title,
        body=body,
        status=AnnouncementStatus.FANNING_OUT,
        cursor=0,
        recipients=0,
        created_at=now,
        updated_at=now,
    )
    session.add(announcement)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "announcement.create",
        "announcement",
        announcement.id,
        after={"title": title, "branch": branch_code, "town": town_id},
    )
    session.commit()
    return fan_out(session, announcement.id, chunk_size=chunk_size)


def fan_out(
    session: Session,
    announcement_id: int,
    *,
    chunk_size: int = CHUNK,
    max_chunks: int | None = None,
) -> Announcement:
    """Queue the announcement for members past its cursor, one committed chunk at a time.

    :param max_chunks: stop early (tests simulate a fan-out cut short).
    :return: the announcement as it stands after the last chunk.
    :raise NotFound: no such announcement.
    """
    chunks = 0
    while True:
        announcement = session.scalar(
            select(Announcement).where(Announcement.id == announcement_id).with_for_update()
        )
        if announcement is None:
            session.rollback()
            raise NotFound("No such announcement.")
        if announcement.status == AnnouncementStatus.DONE or (
            max_chunks is not None and chunks >= max_chunks
        ):
            session.commit()
            return announcement
        member_ids = list(
            session.scalars(
                _audience(announcement)
                .where(Member.id > announcement.cursor)
                .order_by(Member.id)
                .limit(chunk_size)
            )
        )
        announcement.recipients += outbox.enqueue_many(
            session,
            recipient_ids=member_ids,
            kind="announcement",
            params={
                "announcement_id": str(announcement.id),
                "title": announcement.title,
                "body": announcement.body,
            },
            dedupe_prefix=f"announcement:{announcement.id}",
            inbox_body=announcement.body,
        )
        if member_ids:
            announcement.cursor = member_ids[-1]
        if len(member_ids) < chunk_size:
            announcement.status = AnnouncementStatus.DONE
        announcement.updated_at = utcnow()
        session.commit()
        chunks += 1


def _audience(announcement: Announcement):  # type: ignore[no-untyped-def]
    query = select(Member.id).where(Member.status == MemberStatus.ACTIVE)
    if announcement.branch_id is not None:
        query = query.join(MemberBranch, MemberBranch.member_id == Member.id).where(
            MemberBranch.branch_id == announcement.branch_id
        )
    if announcement.town_id is not None:
        query = query.where(Member.town_id == announcement.town_id)
    return query


def resume_stale(session: Session, *, now: datetime | None = None) -> int:
    """Finish fan-outs untouched for ``STALE_AFTER`` (their request died mid-way).

    :return: how many were finished.
    """
    cutoff = (now or utcnow()) - STALE_AFTER
    stale = list(
        session.scalars(
            select(Announcement.id).where(
                Announcement.status == AnnouncementStatus.FANNING_OUT,
                Announcement.updated_at < cutoff,
            )
        )
    )
    session.commit()
    for announcement_id in stale:
        fan_out(session, announcement_id)
    return len(stale)


def get_visible(session: Session, actor: Actor, announcement_id: int) -> Announcement:
    """:raise NotFound: no such announcement, or the actor may not see it."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None or not (
        announcement.author_id == actor.member_id
        or can_announce(actor, announcement.branch_id, announcement.town_id)
    ):
        raise NotFound("No such announcement.")
    return announcement
