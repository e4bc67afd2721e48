"""The service-hours ledger: append-only entries, never edited.

Every minute a volunteer is credited with is one `HoursEntry`: an attendance credit when a
shift is checked out, an incident credit when a response is resolved, a manual award for
off-plan service (rota duty at an outside office), a correction that adds the difference to an
earlier entry, or a reversal that cancels one. Reports sum entries, so a fix never rewrites
history: the original, the correction, who made it and why all stay visible.

Public entry points for other features:

- :func:`add_entry` writes any entry (no commit: it joins the caller's transaction).
- :func:`credit_minutes` is the short form for the incidents feature.

Nothing else may insert into `hours_entry`: `add_entry` also keeps the rollups that reports
read (`services.hours_rollup`) exact in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from volunteer_hub.errors import Conflict, NotFound, ValidationFailed
from volunteer_hub.models import Branch, Member, Squad, Town
from volunteer_hub.models.attendance import HoursEntry, HoursKind
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, hours_rollup

DEFAULT_TZ = "Asia/Shanghai"
# A single entry above a week of service is a typing error, not a credit.
MAX_ENTRY_MINUTES = 7 * 24 * 60


def federation_tz() -> ZoneInfo:
    """The zone in which days and months are counted (HUB_TIMEZONE when an app is active)."""
    return zone_of(current_app.config if has_app_context() else {})


def zone_of(config: Mapping[str, Any]) -> ZoneInfo:
    """The federation's zone as `config` sets it (HUB_TIMEZONE), for code that runs outside
    an app context."""
    return ZoneInfo(config.get("HUB_TIMEZONE") or DEFAULT_TZ)


def local_day(moment: datetime) -> date:
    """The federation-local calendar day of an aware datetime."""
    return moment.astimezone(federation_tz()).date()


def squad_of(session: Session, branch_id: int, town_id: int | None) -> int | None:
    """The squad of (branch, town), if one exists."""
    if town_id is None:
        return None
    return session.scalar(
        select(Squad.id).where(Squad.branch_id == branch_id, Squad.town_id == town_id)
    )


def add_entry(
    session: Session,
    *,
    member_id: int,
    kind: HoursKind | str,
    minutes: int,
    occurred_at: datetime,
    branch_id: int,
    town_id: int | None,
    reason: str | None = None,
    actor_id: int | None = None,
    assignment_id: int | None = None,
    incident_id: int | None = None,
    references_id: int | None = None,
    attendance_id: int | None = None,
    turns: int | None = None,
) -> HoursEntry:
    """Append one entry to the ledger, in the caller's transaction (no commit).

    :param member_id: whose hours.
    :param kind: attendance, correction, manual, reversal or incident.
    :param minutes: signed minutes (corrections and reversals may be negative).
    :param occurred_at: when the service happened (aware); decides the day and month it counts in.
    :param branch_id: the branch credited; `town_id` the town (the squad follows from both).
        An entry with `references_id` ignores both: it counts where the entry it corrects or
        reverses counts (that entry's branch, town and squad), so that a squad formed for
        (branch, town) since cannot split an entry from its reversal in a report.
    :param reason: why (required by the callers for corrections, awards and reversals).
    :param actor_id: who wrote it (None for the system: check-out, worker jobs).
    :param assignment_id, incident_id, attendance_id: what earned it.
    :param references_id: the entry a correction or reversal applies to.
    :param turns: what it adds to the turn count; by default 1 for attendance and incident
        credits, 0 otherwise.
    :return: the flushed entry (its id is set).
    :raise ValueError: a naive `occurred_at`, an implausible number of minutes or no entry
        `references_id` (a bug in the caller, since every API input is checked before it
        reaches here).
    """
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    if abs(minutes) > MAX_ENTRY_MINUTES:
        raise ValueError(f"{minutes} minutes in one entry is more than a week")
    kind = HoursKind(kind)
    if turns is None:
        turns = 1 if kind in (HoursKind.ATTENDANCE, HoursKind.INCIDENT) else 0
    day = local_day(occurred_at)
    if references_id is None:
        squad_id = squad_of(session, branch_id, town_id)
    else:
        referenced = session.get(HoursEntry, references_id)
        if referenced is None:
            raise ValueError(f"no hours entry {references_id} to refer to")
        branch_id, town_id, squad_id = referenced.branch_id, referenced.town_id, referenced.squad_id
    entry = HoursEntry(
        kind=kind,
        minutes=minutes,
        turns=turns,
        member_id=member_id,
        branch_id=branch_id,
        town_id=town_id,
        squad_id=squad_id,
        occurred_at=occurred_at,
        service_day=day,
        service_month=day.replace(day=1),
        assignment_id=assignment_id,
        attendance_id=attendance_id,
        incident_id=incident_id,
        references_id=references_id,
        actor_id=actor_id,
        reason=reason,
    )
    session.add(entry)
    session.flush()
    # Same transaction as the entry: the rollup is never ahead of or behind the ledger.
    hours_rollup.bump(
        session,
        service_month=entry.service_month,
        branch_id=branch_id,
        member_id=member_id,
        town_id=town_id,
        squad_id=squad_id,
        minutes=minutes,
        turns=turns,
    )
    return entry


def credit_minutes(
    session: Session,
    *,
    member_id: int,
    minutes: int,
    occurred_at: datetime,
    branch_id: int,
    town_id: int | None,
    incident_id: int,
    actor_id: int | None = None,
    reason: str | None = None,
) -> HoursEntry:
    """Credit an incident response: one turn and its minutes (no commit).

    :return: the entry. :raise ValueError: see :func:`add_entry`.
    """
    return add_entry(
        session,
        member_id=member_id,
        kind=HoursKind.INCIDENT,
        minutes=minutes,
        occurred_at=occurred_at,
        branch_id=branch_id,
        town_id=town_id,
        incident_id=incident_id,
        actor_id=actor_id,
        reason=reason,
    )


def entry_view(entry: HoursEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "kind": entry.kind.value,
        "minutes": entry.minutes,
        "turns": entry.turns,
        "member": entry.member_id,
        "branch": entry.branch_id,
        "town": entry.town_id,
        "squad": entry.squad_id,
        "occurred_at": entry.occurred_at,
        "service_day": entry.service_day,
        "assignment": entry.assignment_id,
        "attendance": entry.attendance_id,
        "incident": entry.incident_id,
        "references": entry.references_id,
        "actor": entry.actor_id,
        "reason": entry.reason,
        "created_at": entry.created_at,
    }


def net_minutes(session: Session, entry: HoursEntry) -> tuple[int, bool]:
    """The entry's minutes plus every correction of it, and whether it was reversed."""
    rows = session.execute(
        select(HoursEntry.kind, func.coalesce(func.sum(HoursEntry.minutes), 0))
        .where(HoursEntry.references_id == entry.id)
        .group_by(HoursEntry.kind)
    ).all()
    by_kind = {HoursKind(kind): int(total) for kind, total in rows}
    return entry.minutes + by_kind.get(HoursKind.CORRECTION, 0), HoursKind.REVERSAL in by_kind


def award_manual(
    session: Session,
    *,
    actor_id: int,
    member_id: int,
    branch_id: int,
    town_id: int | None,
    minutes: int,
    occurred_at: datetime,
    reason: str,
    now: datetime | None = None,
) -> HoursEntry:
    """Award hours for service outside any shift (rota duty at an outside office); commits.

    The caller has checked that the actor may award hours in `branch_id`.

    :param now: the server's time (by default the current one).
    :return: the new entry.
    :raise NotFound: no such member or town.
    :raise ValidationFailed: `occurred_at` is in the future, or the member does not belong to
        the branch.
    """
    _check_service_done(occurred_at, now or utcnow())
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("No such member.")
    if branch_id not in {b.id for b in member.branches}:
        raise ValidationFailed(
            "The member does not belong to this branch.",
            errors={"member": ["The member does not belong to this branch."]},
        )
    if town_id is not None and session.get(Town, town_id) is None:
        raise ValidationFailed("No such town.", errors={"town": ["No such town."]})
    entry = add_entry(
        session,
        member_id=member_id,
        kind=HoursKind.MANUAL,
        minutes=minutes,
        occurred_at=occurred_at,
        branch_id=branch_id,
        town_id=town_id if town_id is not None else member.town_id,
        reason=reason,
        actor_id=actor_id,
    )
    audit.record(
        session,
        actor_id,
        "hours.award",
        "hours_entry",
        entry.id,
        after={"member": member_id, "minutes": minutes, "branch": branch_id},
        reason=reason,
    )
    session.commit()
    return entry


def _check_service_done(occurred_at: datetime, now: datetime) -> None:
    """An award is for service already done: `occurred_at` may be ahead of `now` by no more
    than the clock skew that attendance corrections allow (ATTENDANCE_CLOCK_SKEW_MIN).

    :raise ValidationFailed: later than that, saying what is allowed.
    """
    # Imported here: services.attendance writes its credits through this module.
    from volunteer_hub.services.attendance import Rules

    config: Mapping[str, Any] = current_app.config if has_app_context() else {}
    skew: timedelta = Rules.from_config(config).clock_skew
    if occurred_at <= now + skew:
        return
    allowed = f"{skew.total_seconds() / 60:g} min"
    raise ValidationFailed(
        f"An award is for service already done: occurred_at may be at most {allowed} after "
        "the server's time (for a clock running a little fast).",
        errors={"occurred_at": [f"In the future (more than {allowed} ahead)."]},
    )


def get_entry(session: Session, entry_id: int) -> HoursEntry:
    """:raise NotFound: no such entry."""
    entry = session.get(HoursEntry, entry_id)
    if entry is None:
        raise NotFound("No such hours entry.")
    return entry


def reverse_entry(
    session: Session, *, actor_id: int, entry: HoursEntry, reason: str, lock: bool = False
) -> HoursEntry:
    """Cancel an entry and its corrections with one reversal entry; commits.

    :param lock: take a row lock on the entry first (PostgreSQL), so two reviewers pressing
        "reverse" at once write one reversal.
    :return: the reversal entry.
    :raise Conflict: the entry is a reversal or a correction, or was already reversed.
    """
    if lock:
        session.execute(select(HoursEntry.id).where(HoursEntry.id == entry.id).with_for_update())
    if entry.kind in (HoursKind.REVERSAL, HoursKind.CORRECTION):
        raise Conflict(
            "Reverse the original entry, not a correction or reversal of it.",
            extra={"references": entry.references_id},
        )
    net, reversed_already = net_minutes(session, entry)
    if reversed_already:
        raise Conflict("This entry was already reversed.")
    reversal = add_entry(
        session,
        member_id=entry.member_id,
        kind=HoursKind.REVERSAL,
        minutes=-net,
        occurred_at=entry.occurred_at,
        branch_id=entry.branch_id,
        town_id=entry.town_id,
        reason=reason,
        actor_id=actor_id,
        assignment_id=entry.assignment_id,
        attendance_id=entry.attendance_id,
        incident_id=entry.incident_id,
        references_id=entry.id,
        turns=-entry.turns,
    )
    audit.record(
        session,
        actor_id,
        "hours.reverse",
        "hours_entry",
        entry.id,
        before={"minutes": net},
        after={"minutes": 0, "reversal": reversal.id},
        reason=reason,
    )
    session.commit()
    return reversal


def branch_by_code(session: Session, code: str) -> Branch:
    """:raise ValidationFailed: no branch with that code (named as the `branch` field)."""
    branch = session.scalar(select(Branch).where(Branch.code == code))
    if branch is None:
        raise ValidationFailed("No such branch.", errors={"branch": [f"No branch {code!r}."]})
    return branch
