"""Incidents: report, call out in waves, accept (exactly `needed`), arrive, resolve, escalate.

Every operation takes a session, enforces the rules, writes its audit row and its pushes in the
same transaction, and commits or raises. Audit rows of object_type "incident" are the
incident's timeline.

The accept race is decided by the incident row: on PostgreSQL it is locked `FOR UPDATE` before
counting; on SQLite every transaction is BEGIN IMMEDIATE, which serialises writers the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from volunteer_hub.auth.policy import (
    Actor,
    can_manage_incident,
    can_report_incident,
    can_view_incident,
    incident_list_scope,
    require,
    require_visible,
)
from volunteer_hub.errors import Conflict, NotFound, ValidationFailed
from volunteer_hub.models import (
    AuditLog,
    Branch,
    Member,
    MemberBranch,
    MemberStatus,
    Role,
    RoleGrant,
    Skill,
    Town,
)
from volunteer_hub.models.incidents import (
    LIVE_STATUSES,
    Incident,
    IncidentStatus,
    Offer,
    OfferStatus,
    Urgency,
)
from volunteer_hub.models.notifications import OutboxMessage, OutboxStatus
from volunteer_hub.services import audit, hours, outbox
from volunteer_hub.services.dispatch import RADII_M, Candidate, haversine_m, rank_candidates
from volunteer_hub.services.pagination import paginate

OBJECT = "incident"

# For mediation the federation reports how disputes ended; other branches say how it closed.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "mediation": ("settled_on_site", "referred", "not_settled"),
}
DEFAULT_OUTCOMES = ("handled", "referred", "false_alarm", "not_handled")
ALL_OUTCOMES = tuple(sorted({*DEFAULT_OUTCOMES, *OUTCOMES["mediation"]}))

KIND_LABELS = {
    "dispute": "纠纷调解",
    "hazard": "安全隐患",
    "flood": "内涝",
    "typhoon": "台风险情",
    "fire": "火情",
    "accident": "事故",
    "rescue": "救援",
    "missing_person": "寻人",
    "fight": "打架斗殴",
}


@dataclass(frozen=True)
class DispatchSettings:
    """Tunable timings of a call-out, read from the app config (INCIDENT_*)."""

    wave_factor: int = 3
    wave_interval: timedelta = timedelta(minutes=3)
    offer_ttl: timedelta = timedelta(minutes=3)
    deadline: timedelta = timedelta(minutes=15)
    max_waves: int = 4
    arrive_radius_m: int = 1_000
    radii_m: tuple[int, ...] = RADII_M

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DispatchSettings:
        base = cls()
        return cls(
            wave_factor=int(config.get("INCIDENT_WAVE_FACTOR", base.wave_factor)),
            wave_interval=timedelta(
                seconds=float(
                    config.get("INCIDENT_WAVE_INTERVAL_S", base.wave_interval.total_seconds())
                )
            ),
            offer_ttl=timedelta(
                seconds=float(config.get("INCIDENT_OFFER_TTL_S", base.offer_ttl.total_seconds()))
            ),
            deadline=timedelta(
                seconds=float(config.get("INCIDENT_DEADLINE_S", base.deadline.total_seconds()))
            ),
            max_waves=int(config.get("INCIDENT_MAX_WAVES", base.max_waves)),
            arrive_radius_m=int(config.get("INCIDENT_ARRIVE_RADIUS_M", base.arrive_radius_m)),
            radii_m=tuple(config.get("INCIDENT_RADII_M", base.radii_m)),
        )


# ---------------------------------------------------------------------- helpers


def _snapshot(incident: Incident) -> dict[str, Any]:
    return {
        "status": incident.status.value,
        "wave": incident.wave,
        "accepted": incident.accepted_count,
        "needed": incident.needed,
        "outcome": incident.outcome,
    }


def _local_hm(moment: datetime) -> str:
    return moment.astimezone(hours.federation_tz()).strftime("%H:%M")


def _location(incident: Incident) -> str:
    if incident.address:
        return incident.address
    if incident.town is not None:
        return incident.town.name
    return f"{incident.lat:.4f},{incident.lon:.4f}"


def _push_base(incident: Incident) -> dict[str, str]:
    return {
        "incident_id": str(incident.id),
        "incident_type": KIND_LABELS.get(incident.kind, incident.kind),
        "location": _location(incident),
    }


def _summary(incident: Incident) -> str:
    text = incident.description.strip().replace("\n", " ") or incident.kind
    return text if len(text) <= 60 else text[:59] + "…"


def _lock_incident(session: Session, incident_id: int) -> Incident | None:
    """The incident row, locked for this transaction on PostgreSQL (SQLite's BEGIN IMMEDIATE
    already serialises writers).

    Everything read before the lock is expired, so offers and counts are re-read under it
    rather than trusted from the identity map.
    """
    incident = session.scalar(select(Incident).where(Incident.id == incident_id).with_for_update())
    session.expire_all()
    return incident


def _skill_ids(session: Session, codes: Iterable[str]) -> list[int]:
    return list(session.scalars(select(Skill.id).where(Skill.code.in_(list(codes)))))


def _open_offers(session: Session, incident_id: int) -> list[Offer]:
    return list(
        session.scalars(
            select(Offer)
            .where(Offer.incident_id == incident_id, Offer.status == OfferStatus.OPEN)
            .execution_options(populate_existing=True)
        )
    )


def _credit(
    session: Session, incident: Incident, offer: Offer, minutes: int, at: datetime, actor_id: int
) -> None:
    """Credit a responder's time to the hours ledger (one turn) and note it on the offer."""
    offer.minutes_credited = minutes
    hours.credit_minutes(
        session,
        member_id=offer.member_id,
        minutes=minutes,
        occurred_at=offer.arrived_at or at,
        branch_id=incident.branch_id,
        town_id=incident.town_id,
        incident_id=incident.id,
        actor_id=actor_id,
        reason=f"incident {incident.id}: {incident.kind}",
    )


# ---------------------------------------------------------------------- offers and waves


def _send_offers(
    session: Session,
    incident: Incident,
    candidates: list[Candidate],
    now: datetime,
    settings: DispatchSettings,
    dispatched_by: int | None = None,
) -> list[Offer]:
    """Create offers and their high-priority pushes; flushes so offer ids exist."""
    expires = now + settings.offer_ttl
    offers = [
        Offer(
            incident_id=incident.id,
            member_id=candidate.member_id,
            wave=incident.wave,
            distance_m=candidate.distance_m,
            dispatched_by=dispatched_by,
            status=OfferStatus.OPEN,
            created_at=now,
            expires_at=expires,
        )
        for candidate in candidates
    ]
    session.add_all(offers)
    session.flush()
    base = _push_base(incident)
    summary, respond_by = _summary(incident), _local_hm(expires)
    # One bulk write for the wave instead of two flushed INSERTs per offer: this is on the
    # path from a grid worker's report to phones ringing.
    outbox.enqueue_bulk(
        session,
        [
            outbox.BulkPush(
                recipient_id=offer.member_id,
                kind="incident_offer",
                params={
                    **base,
                    "offer_id": str(offer.id),
                    "summary": summary,
                    "respond_by": respond_by,
                },
                incident_id=incident.id,
            )
            for offer in offers
        ],
        existing_keys=(),
    )
    return offers


def _run_wave(
    session: Session, incident: Incident, now: datetime, settings: DispatchSettings
) -> int:
    """Offer the next best candidates; returns how many were offered."""
    missing = incident.needed - incident.accepted_count
    candidates = rank_candidates(
        session,
        branch_id=incident.branch_id,
        skill_ids=_skill_ids(session, incident.skills),
        lat=incident.lat,
        lon=incident.lon,
        limit=missing * settings.wave_factor,
        now=now,
        incident_id=incident.id,
        radii_m=settings.radii_m,
    )
    if not candidates:
        return 0
    incident.wave += 1
    incident.status = IncidentStatus.DISPATCHING
    incident.next_wave_at = min(now + settings.wave_interval, incident.deadline_at)
    _send_offers(session, incident, candidates, now, settings)
    audit.record(
        session,
        None,
        "incident.wave",
        OBJECT,
        incident.id,
        after={
            "wave": incident.wave,
            "offered": [c.member_id for c in candidates],
            "distances_m": [c.distance_m for c in candidates],
        },
    )
    return len(candidates)


def coordinator_ids(session: Session, branch_id: int, town_id: int | None) -> list[int]:
    """Active coordinators of the branch whose grant covers the town (branch-wide and unscoped
    coordinators too; for no town, only those); the SG when none."""
    query = (
        select(RoleGrant.member_id)
        .join(Member, Member.id == RoleGrant.member_id)
        .where(Member.status == MemberStatus.ACTIVE)
        .distinct()
    )
    ids = list(
        session.scalars(
            query.where(
                RoleGrant.role == Role.COORDINATOR,
                or_(RoleGrant.branch_id == branch_id, RoleGrant.branch_id.is_(None)),
                or_(RoleGrant.town_id.is_(None), RoleGrant.town_id == town_id),
            )
        )
    )
    if not ids:
        ids = list(session.scalars(query.where(RoleGrant.role == Role.SECRETARY_GENERAL)))
    return sorted(ids)


def _escalate(session: Session, incident: Incident, now: datetime, reason: str) -> None:
    before = _snapshot(incident)
    incident.status = IncidentStatus.ESCALATED
    incident.escalated_at = now
    incident.next_wave_at = None
    offers_sent = session.scalar(
        select(func.count()).select_from(Offer).where(Offer.incident_id == incident.id)
    )
    minutes = max(0, int((now - incident.created_at).total_seconds() // 60))
    params = {**_push_base(incident), "minutes": str(minutes), "offers": str(offers_sent or 0)}
    recipients = coordinator_ids(session, incident.branch_id, incident.town_id)
    for member_id in recipients:
        outbox.enqueue(
            session,
            recipient_id=member_id,
            kind="incident_escalated",
            params=params,
            incident_id=incident.id,
            dedupe_key=f"incident-escalated-{incident.id}-{member_id}",
        )
    audit.record(
        session,
        None,
        "incident.escalated",
        OBJECT,
        incident.id,
        before=before,
        after={**_snapshot(incident), "notified": recipients},
        reason=reason,
    )


def _withdraw_open_offers(
    session: Session, incident: Incident, now: datetime, *, notify_accepted: bool = False
) -> list[int]:
    """Withdraw every open offer. A call-out push not yet sent is cancelled instead of being
    followed by a withdrawal; one already on the phone gets an `offer_withdrawn` push.
    Returns the members whose offers were withdrawn."""
    unsent = set(
        session.scalars(
            select(OutboxMessage.recipient_id).where(
                OutboxMessage.incident_id == incident.id,
                OutboxMessage.kind == "incident_offer",
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
    )
    outbox.cancel_pending(session, incident_id=incident.id, kinds=["incident_offer"])
    targets = _open_offers(session, incident.id)
    if notify_accepted:
        targets += [offer for offer in incident.offers if offer.status == OfferStatus.ACCEPTED]
    base = _push_base(incident)
    for offer in targets:
        if offer.status == OfferStatus.OPEN:
            offer.status = OfferStatus.WITHDRAWN
        if offer.member_id in unsent and offer.status != OfferStatus.ACCEPTED:
            continue
        outbox.enqueue(
            session,
            recipient_id=offer.member_id,
            kind="offer_withdrawn",
            params={**base, "offer_id": str(offer.id)},
            incident_id=incident.id,
            dedupe_key=f"offer-withdrawn-{offer.id}",
        )
    return [offer.member_id for offer in targets]


# ---------------------------------------------------------------------- reporting


def report_incident(
    session: Session,
    actor: Actor,
    data: Mapping[str, Any],
    *,
    now: datetime,
    settings: DispatchSettings,
) -> Incident:
    """Record an incident and send the first wave of offers in the same transaction.

    :param data: the validated body (kind, branch code, lat, lon, description, needed,
        skills, urgency, town?, address?).
    :return: the incident, `dispatching`, or `escalated` when nobody at all qualifies.
    :raise ValidationFailed: unknown branch, skill or town.
    :raise Forbidden: the caller may not report for this branch.
    """
    branch = session.scalar(select(Branch).where(Branch.code == data["branch"]))
    if branch is None:
        raise ValidationFailed("Unknown branch.", errors={"branch": ["No such branch code."]})
    require(
        can_report_incident(actor, branch.id),
        "Only grid workers, squad leaders and coordinators of this branch report incidents.",
    )
    codes = sorted(set(data.get("skills") or []))
    known = set(session.scalars(select(Skill.code).where(Skill.code.in_(codes))))
    if unknown := [code for code in codes if code not in known]:
        raise ValidationFailed(
            "Unknown skills.", errors={"skills": [f"Unknown skill code: {c}" for c in unknown]}
        )
    town = _town_for(session, data)
    incident = Incident(
        kind=data["kind"],
        branch_id=branch.id,
        town_id=town.id if town else None,
        lat=data["lat"],
        lon=data["lon"],
        address=data.get("address"),
        description=data.get("description") or "",
        needed=data["needed"],
        skills=codes,
        urgency=Urgency(data.get("urgency") or Urgency.NORMAL),
        status=IncidentStatus.OPEN,
        reporter_id=actor.member_id,
        accepted_count=0,
        wave=0,
        deadline_at=now + settings.deadline,
        created_at=now,
    )
    incident.town = town
    session.add(incident)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "incident.reported",
        OBJECT,
        incident.id,
        after={**_snapshot(incident), "kind": incident.kind, "skills": codes},
    )
    if _run_wave(session, incident, now, settings) == 0:
        _escalate(session, incident, now, "no qualified volunteer is free nearby")
    session.commit()
    return incident


def _town_for(session: Session, data: Mapping[str, Any]) -> Town | None:
    """The given town, else the nearest town to the position (towns are few)."""
    if data.get("town") is not None:
        town = session.get(Town, data["town"])
        if town is None:
            raise ValidationFailed("Unknown town.", errors={"town": ["No such town."]})
        return town
    towns = list(session.scalars(select(Town)))
    if not towns:
        return None
    return min(towns, key=lambda t: haversine_m(data["lat"], data["lon"], t.lat, t.lon))


# ---------------------------------------------------------------------- reading


def get_incident(session: Session, actor: Actor, incident_id: int) -> Incident:
    """:raise NotFound: no such incident, or the caller may not see it."""
    incident = session.scalar(
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.offers).selectinload(Offer.member))
    )
    require_visible(incident is not None, "incident")
    assert incident is not None
    offered = any(offer.member_id == actor.member_id for offer in incident.offers)
    require_visible(
        can_view_incident(
            actor, incident.branch_id, incident.town_id, incident.reporter_id, offered
        ),
        "incident",
    )
    return incident


def incident_view(session: Session, actor: Actor, incident: Incident) -> dict[str, Any]:
    """The Incident of API.md; coordinators and the reporter see every offer and the timeline,
    an offered volunteer sees their own offer."""
    sees_all = incident.reporter_id == actor.member_id or can_manage_incident(
        actor, incident.branch_id, incident.town_id
    )
    offers = [o for o in incident.offers if sees_all or o.member_id == actor.member_id]
    view: dict[str, Any] = {
        "id": incident.id,
        "kind": incident.kind,
        "branch": incident.branch.code,
        "town": incident.town_id,
        "lat": incident.lat,
        "lon": incident.lon,
        "address": incident.address,
        "description": incident.description,
        "needed": incident.needed,
        "accepted": incident.accepted_count,
        "skills": incident.skills,
        "urgency": incident.urgency.value,
        "status": incident.status.value,
        "reporter": incident.reporter_id,
        "wave": incident.wave,
        "next_wave_at": incident.next_wave_at,
        "deadline_at": incident.deadline_at,
        "staffed_at": incident.staffed_at,
        "escalated_at": incident.escalated_at,
        "resolved_at": incident.resolved_at,
        "outcome": incident.outcome,
        "outcome_note": incident.outcome_note,
        "created_at": incident.created_at,
        "offers": [offer_view(o) for o in offers],
    }
    if sees_all:
        view["timeline"] = [
            {"at": row.at, "action": row.action, "actor": row.actor_id, "reason": row.reason}
            for row in session.scalars(
                select(AuditLog)
                .where(AuditLog.object_type == OBJECT, AuditLog.object_id == incident.id)
                .order_by(AuditLog.at, AuditLog.id)
            )
        ]
    return view


def offer_view(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "incident": offer.incident_id,
        "member": {"id": offer.member_id, "name": offer.member.name},
        "wave": offer.wave,
        "distance_m": offer.distance_m,
        "dispatched_by": offer.dispatched_by,
        "status": offer.status.value,
        "created_at": offer.created_at,
        "expires_at": offer.expires_at,
        "answered_at": offer.answered_at,
        "arrived_at": offer.arrived_at,
        "arrived_lat": offer.arrived_lat,
        "arrived_lon": offer.arrived_lon,
        "left_at": offer.left_at,
        "minutes_credited": offer.minutes_credited,
    }


def list_incidents(
    session: Session,
    actor: Actor,
    *,
    status: str | None,
    branch: str | None,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    """Incidents of the branches the caller coordinates (of their towns, for town-scoped
    grants; all for the SG and admins), newest first.

    :raise Forbidden: the caller coordinates nothing.
    :raise ValidationFailed: unknown branch code.
    """
    scope = incident_list_scope(actor)
    query = select(Incident).options(selectinload(Incident.branch))
    if branch is not None:
        branch_id = session.scalar(select(Branch.id).where(Branch.code == branch))
        if branch_id is None:
            raise ValidationFailed("Unknown branch.", errors={"branch": ["No such branch code."]})
        if scope is not None:
            scope = {(b, t) for b, t in scope if b == branch_id}
            require(bool(scope), "You do not coordinate this branch.")
        query = query.where(Incident.branch_id == branch_id)
    if scope is not None:
        whole = sorted(b for b, t in scope if t is None)
        query = query.where(
            or_(
                Incident.branch_id.in_(whole),
                *[
                    and_(Incident.branch_id == b, Incident.town_id == t)
                    for b, t in sorted(scope, key=lambda pair: (pair[0], pair[1] or 0))
                    if t is not None
                ],
            )
        )
    if status is not None:
        query = query.where(Incident.status == IncidentStatus(status))
    return paginate(session, query.order_by(Incident.id.desc()), page, page_size)


def my_offers(
    session: Session, actor: Actor, *, now: datetime, page: int, page_size: int
) -> dict[str, Any]:
    """The caller's open, unexpired offers, most recent first."""
    query = (
        select(Offer)
        .where(
            Offer.member_id == actor.member_id,
            Offer.status == OfferStatus.OPEN,
            Offer.expires_at > now,
        )
        .options(selectinload(Offer.member), selectinload(Offer.incident))
        .order_by(Offer.id.desc())
    )
    result = paginate(session, query, page, page_size)
    result["items"] = [
        {**offer_view(offer), "incident_summary": _offer_incident(offer.incident)}
        for offer in result["items"]
    ]
    return result


def _offer_incident(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kind": incident.kind,
        "lat": incident.lat,
        "lon": incident.lon,
        "address": incident.address,
        "description": incident.description,
        "urgency": incident.urgency.value,
        "status": incident.status.value,
    }


# ---------------------------------------------------------------------- answering


def _own_offer_incident(session: Session, actor: Actor, offer_id: int) -> tuple[Offer, Incident]:
    """Lock the offer's incident, then read the offer fresh under that lock.

    :raise NotFound: no such offer, or it is someone else's.
    """
    incident_id = session.scalar(
        select(Offer.incident_id).where(Offer.id == offer_id, Offer.member_id == actor.member_id)
    )
    if incident_id is None:
        raise NotFound("No such offer.")
    incident = _lock_incident(session, incident_id)
    offer = session.scalar(
        select(Offer).where(Offer.id == offer_id).execution_options(populate_existing=True)
    )
    if incident is None or offer is None:
        raise NotFound("No such offer.")
    return offer, incident


def accept_offer(session: Session, actor: Actor, offer_id: int, *, now: datetime) -> Offer:
    """Accept a call-out. The `needed`-th accept staffs the incident and withdraws every
    other open offer.

    :return: the accepted offer (accepting twice returns it again).
    :raise NotFound: not the caller's offer.
    :raise Conflict: the incident is staffed (extra `reason` = "staffed"; the offer is
        withdrawn with a push), closed, or the offer expired or was declined.
    """
    offer, incident = _own_offer_incident(session, actor, offer_id)
    if offer.status == OfferStatus.ACCEPTED:
        session.rollback()
        return offer
    if incident.status not in LIVE_STATUSES:
        session.rollback()
        raise Conflict("The incident is closed.", extra={"reason": incident.status.value})
    if incident.accepted_count >= incident.needed:
        if offer.status == OfferStatus.OPEN:
            offer.status = OfferStatus.WITHDRAWN
            outbox.enqueue(
                session,
                recipient_id=offer.member_id,
                kind="offer_withdrawn",
                params={**_push_base(incident), "offer_id": str(offer.id)},
                incident_id=incident.id,
                dedupe_key=f"offer-withdrawn-{offer.id}",
            )
            session.commit()
        else:
            session.rollback()
        raise Conflict("The incident is already staffed.", extra={"reason": "staffed"})
    if offer.status != OfferStatus.OPEN or offer.expires_at <= now:
        reason = offer.status.value if offer.status != OfferStatus.OPEN else "expired"
        session.rollback()
        raise Conflict(f"This offer is no longer open ({reason}).", extra={"reason": reason})
    before = _snapshot(incident)
    offer.status = OfferStatus.ACCEPTED
    offer.answered_at = now
    incident.accepted_count += 1
    action = "incident.offer_accepted"
    if incident.accepted_count >= incident.needed:
        action = "incident.staffed"
        incident.status = IncidentStatus.STAFFED
        incident.staffed_at = now
        incident.next_wave_at = None
        _withdraw_open_offers(session, incident, now)
    audit.record(
        session,
        actor.member_id,
        action,
        OBJECT,
        incident.id,
        before=before,
        after={**_snapshot(incident), "offer": offer.id, "member": offer.member_id},
    )
    session.commit()
    return offer


def decline_offer(session: Session, actor: Actor, offer_id: int, *, now: datetime) -> Offer:
    """Decline a call-out; the volunteer is never asked for this incident again. When the
    last open offer of an understaffed incident is declined, the next wave is due at once.

    :raise NotFound: not the caller's offer.
    :raise Conflict: the offer is not open (accepted, expired, withdrawn).
    """
    offer, incident = _own_offer_incident(session, actor, offer_id)
    if offer.status == OfferStatus.DECLINED:
        session.rollback()
        return offer
    if offer.status != OfferStatus.OPEN:
        reason = offer.status.value
        session.rollback()
        raise Conflict(f"This offer is no longer open ({reason}).", extra={"reason": reason})
    offer.status = OfferStatus.DECLINED
    offer.answered_at = now
    session.flush()
    if (
        incident.status == IncidentStatus.DISPATCHING
        and not _open_offers(session, incident.id)
        and incident.next_wave_at is not None
    ):
        incident.next_wave_at = min(incident.next_wave_at, now)
    audit.record(
        session,
        actor.member_id,
        "incident.offer_declined",
        OBJECT,
        incident.id,
        after={"offer": offer.id, "member": offer.member_id},
    )
    session.commit()
    return offer


# ---------------------------------------------------------------------- on the scene


def _responder_offer(session: Session, actor: Actor, incident: Incident) -> Offer | None:
    return session.scalar(
        select(Offer).where(
            Offer.incident_id == incident.id,
            Offer.member_id == actor.member_id,
            Offer.status == OfferStatus.ACCEPTED,
        )
    )


def arrive(
    session: Session,
    actor: Actor,
    incident_id: int,
    lat: float,
    lon: float,
    *,
    now: datetime,
    settings: DispatchSettings,
) -> Offer:
    """A responder reports arrival at the scene; calling again updates their position.

    :raise NotFound: the caller may not see the incident.
    :raise Forbidden: the caller is not an accepted responder.
    :raise Conflict: the incident is closed.
    :raise ValidationFailed: the position is farther from the scene than allowed.
    """
    incident = get_incident(session, actor, incident_id)
    offer = _responder_offer(session, actor, incident)
    require(offer is not None, "Only a volunteer who accepted this incident arrives at it.")
    assert offer is not None
    if incident.status not in LIVE_STATUSES:
        raise Conflict("The incident is closed.", extra={"reason": incident.status.value})
    distance = haversine_m(lat, lon, incident.lat, incident.lon)
    if distance > settings.arrive_radius_m:
        message = (
            f"You are {distance:.0f} m from the scene; arrive within {settings.arrive_radius_m} m."
        )
        raise ValidationFailed(message, errors={"lat": [message], "lon": [message]})
    first = offer.arrived_at is None
    if first:
        offer.arrived_at = now
    offer.arrived_lat, offer.arrived_lon = lat, lon
    audit.record(
        session,
        actor.member_id,
        "incident.arrived" if first else "incident.position_updated",
        OBJECT,
        incident.id,
        after={"offer": offer.id, "lat": lat, "lon": lon, "distance_m": round(distance)},
    )
    session.commit()
    return offer


def allowed_outcomes(branch_code: str) -> tuple[str, ...]:
    return OUTCOMES.get(branch_code, DEFAULT_OUTCOMES)


def resolve(
    session: Session,
    actor: Actor,
    incident_id: int,
    outcome: str,
    note: str | None,
    *,
    now: datetime,
) -> Incident:
    """Close the incident with an outcome; responders who arrived are credited the minutes
    from arrival to now through the hours ledger; open offers are withdrawn.

    :raise NotFound: the caller may not see the incident.
    :raise Forbidden: neither a coordinator of the branch nor a responder.
    :raise Conflict: already resolved or cancelled.
    :raise ValidationFailed: an outcome this branch does not use.
    """
    incident = get_incident(session, actor, incident_id)
    require(
        can_manage_incident(actor, incident.branch_id, incident.town_id)
        or _responder_offer(session, actor, incident) is not None,
        "Only the branch's coordinators (of its town) and the responders resolve an incident.",
    )
    allowed = allowed_outcomes(incident.branch.code)
    if outcome not in allowed:
        raise ValidationFailed(
            "This outcome does not apply.",
            errors={"outcome": [f"One of: {', '.join(allowed)}."]},
        )
    locked = _lock_incident(session, incident.id)
    assert locked is not None
    if locked.status not in LIVE_STATUSES:
        session.rollback()
        raise Conflict("The incident is already closed.", extra={"reason": locked.status.value})
    before = _snapshot(locked)
    _withdraw_open_offers(session, locked, now)
    credited: dict[int, int] = {}
    for offer in locked.offers:
        if offer.status != OfferStatus.ACCEPTED:
            continue
        offer.left_at = offer.left_at or now
        if offer.arrived_at is not None:
            minutes = max(0, int((offer.left_at - offer.arrived_at).total_seconds() // 60))
            _credit(session, locked, offer, minutes, now, actor.member_id)
            credited[offer.member_id] = minutes
    locked.status = IncidentStatus.RESOLVED
    locked.resolved_at = now
    locked.resolved_by = actor.member_id
    locked.outcome = outcome
    locked.outcome_note = note
    locked.next_wave_at = None
    audit.record(
        session,
        actor.member_id,
        "incident.resolved",
        OBJECT,
        locked.id,
        before=before,
        after={**_snapshot(locked), "credited_minutes": {str(k): v for k, v in credited.items()}},
        reason=note,
    )
    session.commit()
    return locked


# ---------------------------------------------------------------------- coordinators


def dispatch_member(
    session: Session,
    actor: Actor,
    incident_id: int,
    member_id: int,
    *,
    now: datetime,
    settings: DispatchSettings,
) -> Offer:
    """A coordinator calls out a named volunteer of the branch, outside the ranking.

    :raise NotFound: the caller may not see the incident.
    :raise Forbidden: not a coordinator of the branch.
    :raise ValidationFailed: the member is not an active member of the branch.
    :raise Conflict: the incident is staffed or closed, or the member was already offered it.
    """
    incident = get_incident(session, actor, incident_id)
    require(
        can_manage_incident(actor, incident.branch_id, incident.town_id),
        "Only the branch's coordinators (of the incident's town) dispatch.",
    )
    member = session.scalar(
        select(Member).where(
            Member.id == member_id,
            Member.status == MemberStatus.ACTIVE,
            Member.id.in_(
                select(MemberBranch.member_id).where(MemberBranch.branch_id == incident.branch_id)
            ),
        )
    )
    if member is None:
        raise ValidationFailed(
            "Not a volunteer of this branch.",
            errors={"member": ["Not an active member of the incident's branch."]},
        )
    locked = _lock_incident(session, incident.id)
    assert locked is not None
    if locked.status not in LIVE_STATUSES or locked.status == IncidentStatus.STAFFED:
        session.rollback()
        raise Conflict(
            f"The incident is {locked.status.value}.", extra={"reason": locked.status.value}
        )
    if session.scalar(
        select(Offer.id).where(Offer.incident_id == locked.id, Offer.member_id == member_id)
    ):
        session.rollback()
        raise Conflict(
            "This volunteer was already called out to this incident.",
            extra={"reason": "already_offered"},
        )
    distance = (
        haversine_m(locked.lat, locked.lon, member.home_lat, member.home_lon)
        if member.home_lat is not None and member.home_lon is not None
        else None
    )
    candidate = Candidate(member_id, round(distance) if distance is not None else -1, 0, False)
    (offer,) = _send_offers(session, locked, [candidate], now, settings, actor.member_id)
    if distance is None:
        offer.distance_m = None
    audit.record(
        session,
        actor.member_id,
        "incident.dispatched",
        OBJECT,
        locked.id,
        after={"offer": offer.id, "member": member_id},
    )
    session.commit()
    return offer


def cancel(
    session: Session, actor: Actor, incident_id: int, reason: str, *, now: datetime
) -> Incident:
    """Call the incident off: open offers are withdrawn and accepted responders told.

    :raise NotFound: the caller may not see the incident.
    :raise Forbidden: neither a coordinator of the branch nor the reporter.
    :raise Conflict: already resolved or cancelled.
    """
    incident = get_incident(session, actor, incident_id)
    require(
        can_manage_incident(actor, incident.branch_id, incident.town_id)
        or incident.reporter_id == actor.member_id,
        "Only the branch's coordinators (of its town) and the reporter cancel an incident.",
    )
    locked = _lock_incident(session, incident.id)
    assert locked is not None
    if locked.status not in LIVE_STATUSES:
        session.rollback()
        raise Conflict("The incident is already closed.", extra={"reason": locked.status.value})
    before = _snapshot(locked)
    _withdraw_open_offers(session, locked, now, notify_accepted=True)
    locked.status = IncidentStatus.CANCELLED
    locked.resolved_at = now
    locked.resolved_by = actor.member_id
    locked.next_wave_at = None
    audit.record(
        session,
        actor.member_id,
        "incident.cancelled",
        OBJECT,
        locked.id,
        before=before,
        after=_snapshot(locked),
        reason=reason,
    )
    session.commit()
    return locked


# ---------------------------------------------------------------------- the wave job


def _due_ids(session: Session, now: datetime, batch: int) -> list[int]:
    return list(
        session.scalars(
            select(Incident.id)
            .where(Incident.status == IncidentStatus.DISPATCHING, Incident.next_wave_at <= now)
            .order_by(Incident.next_wave_at)
            .limit(batch)
        )
    )


def _claim(session: Session, incident_id: int, now: datetime) -> Incident | None:
    """Lock a due incident, skipping one another worker holds (SKIP LOCKED on PostgreSQL)."""
    return session.scalar(
        select(Incident)
        .where(
            Incident.id == incident_id,
            Incident.status == IncidentStatus.DISPATCHING,
            Incident.next_wave_at <= now,
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def advance_incident(
    session: Session, incident: Incident, now: datetime, settings: DispatchSettings
) -> str:
    """One step for a due incident (locked by the caller): expire lapsed offers, then send the
    next wave, wait for open offers, or escalate. Returns what happened (no commit)."""
    expired = [o for o in _open_offers(session, incident.id) if o.expires_at <= now]
    for offer in expired:
        offer.status = OfferStatus.EXPIRED
        # A call-out still unsent (FCM down) would ask for an answer by a time now past.
        outbox.cancel_pending(
            session, incident_id=incident.id, recipient_id=offer.member_id, kinds=["incident_offer"]
        )
    if expired:
        audit.record(
            session,
            None,
            "incident.offers_expired",
            OBJECT,
            incident.id,
            after={"offers": [o.id for o in expired]},
        )
    still_open = [o for o in _open_offers(session, incident.id) if o.expires_at > now]
    if now >= incident.deadline_at:
        _escalate(session, incident, now, "the deadline passed without enough volunteers")
        return "escalated"
    if incident.wave < settings.max_waves and _run_wave(session, incident, now, settings):
        return "wave"
    if still_open:
        # Nobody new to ask: wait for the outstanding answers before giving up.
        incident.next_wave_at = min(min(o.expires_at for o in still_open), incident.deadline_at)
        return "waiting"
    reason = (
        "every wave went unanswered"
        if incident.wave >= settings.max_waves
        else "no more qualified volunteers nearby"
    )
    _escalate(session, incident, now, reason)
    return "escalated"


def advance_due_incidents(
    session: Session, *, now: datetime, settings: DispatchSettings, batch: int = 100
) -> dict[str, int]:
    """The wave job: advance every due incident, one transaction each, and expire lapsed
    offers of incidents no longer dispatching.

    :return: counts of what happened, for the worker's log.
    """
    counts: dict[str, int] = {"wave": 0, "waiting": 0, "escalated": 0, "skipped": 0}
    ids = _due_ids(session, now, batch)
    session.rollback()
    for incident_id in ids:
        incident = _claim(session, incident_id, now)
        if incident is None:
            session.rollback()
            counts["skipped"] += 1
            continue
        counts[advance_incident(session, incident, now, settings)] += 1
        session.commit()
    result = session.execute(
        update(Offer)
        .where(Offer.status == OfferStatus.OPEN, Offer.expires_at <= now)
        .values(status=OfferStatus.EXPIRED)
    )
    counts["expired"] = int(getattr(result, "rowcount", 0) or 0)
    session.commit()
    return counts
