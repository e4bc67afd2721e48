"""Members: finding, adding, changing, suspending, granting roles; and a member's own weekly
availability and leave.

Every function takes a plain Session and the calling Actor, checks the policy, and commits or
raises a domain error. Changes to a member leave an audit row in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from volunteer_hub.auth.passwords import hash_password
from volunteer_hub.auth.policy import (
    Actor,
    Grant,
    can_grant,
    can_manage_member,
    can_view_member,
    mask_phone,
    member_list_scope,
    require,
    require_visible,
)
from volunteer_hub.auth.tokens import revoke_all_for_member
from volunteer_hub.errors import Conflict, Forbidden, NotFound, ValidationFailed
from volunteer_hub.models import (
    Availability,
    Branch,
    Leave,
    Member,
    MemberBranch,
    MemberSkill,
    MemberStatus,
    Organization,
    Role,
    RoleGrant,
    Skill,
    Town,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit
from volunteer_hub.services.hours import local_day
from volunteer_hub.services.pagination import paginate

MAX_LEAVE = timedelta(days=366)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors={field: [message]})


def _branch_ids(session: Session, codes: Iterable[str], field: str = "branches") -> list[int]:
    """:raise ValidationFailed: a code names no branch."""
    wanted = list(dict.fromkeys(codes))
    found = dict(
        session.execute(select(Branch.code, Branch.id).where(Branch.code.in_(wanted))).all()
    )
    missing = [code for code in wanted if code not in found]
    if missing:
        raise _invalid(field, f"Unknown branch: {', '.join(missing)}.")
    return [found[code] for code in wanted]


def _skill_ids(session: Session, codes: Iterable[str], field: str = "skills") -> dict[str, int]:
    """:raise ValidationFailed: a code names no skill."""
    wanted = list(dict.fromkeys(codes))
    found = dict(session.execute(select(Skill.code, Skill.id).where(Skill.code.in_(wanted))).all())
    missing = [code for code in wanted if code not in found]
    if missing:
        raise _invalid(field, f"Unknown skill: {', '.join(missing)}.")
    return found


def managed_member(session: Session, actor: Actor, member_id: int, doing: str) -> Member:
    """The member, locked for update, if the actor may manage them.

    :raise NotFound: the actor may not see the member.
    :raise Forbidden: the actor may see but not manage the member: not a coordinator of every
        branch of the member, or the member holds a role the actor could not grant.
    """
    member = load_member(session, member_id, for_update=True)
    require_visible(member is not None and can_view_member(actor, member), "member")
    assert member is not None
    grants = [Grant(g.role, g.branch_id, g.town_id) for g in member.roles]
    require(
        can_manage_member(actor, [b.id for b in member.branches], member.town_id, grants),
        "Only a coordinator of every branch of the member, or an admin, "
        f"{doing}; and only for members whose roles they could grant.",
    )
    return member


def load_member(session: Session, member_id: int, *, for_update: bool = False) -> Member | None:
    query = (
        select(Member)
        .where(Member.id == member_id)
        .options(
            selectinload(Member.branches),
            selectinload(Member.skills),
            selectinload(Member.roles).selectinload(RoleGrant.branch),
        )
    )
    if for_update:
        query = query.with_for_update(of=Member)
    return session.scalar(query)


def snapshot(member: Member) -> dict[str, Any]:
    """What the audit trail keeps of a member. The log is widely read, so it holds no private
    data: the phone masked as for those who may not see it, and only whether an identity
    number and a home position are set (`private_changes` says whether they changed)."""
    return {
        "name": member.name,
        "phone": mask_phone(member.phone),
        "id_number_set": member.id_number is not None,
        "gender": member.gender,
        "birth_year": member.birth_year,
        "town": member.town_id,
        "home_set": member.home_lat is not None,
        "branches": sorted(branch.code for branch in member.branches),
        "skills": sorted(
            [s.skill.code, s.expires_on.isoformat() if s.expires_on else None]
            for s in member.skills
        ),
        "is_core": member.is_core,
        "status": member.status.value,
        "organization": member.organization_id,
    }


def _private_values(member: Member) -> dict[str, Any]:
    return {
        "phone": member.phone,
        "id_number": member.id_number,
        "home": (member.home_lat, member.home_lon),
    }


def private_changes(before: dict[str, Any], member: Member) -> dict[str, bool]:
    """`{"phone_changed": True, ...}` for each private value kept out of `snapshot` that
    changed since `_private_values` gave `before`, so that a new number with the same masked
    form, a new identity number or a move of home is still recorded."""
    after = _private_values(member)
    return {f"{key}_changed": True for key, value in after.items() if before[key] != value}


# ---------------------------------------------------------------------- reading


def list_members(
    session: Session,
    actor: Actor,
    *,
    branch: str | None = None,
    town: int | None = None,
    skill: str | None = None,
    q: str | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """One page of members the actor may list, filtered.

    :param branch: a branch code; a coordinator may only ask for branches they coordinate.
    :param skill: members holding this skill with a certificate still valid today.
    :param q: a fragment of the name or of the phone number.
    :return: the page envelope with Member objects (branches and skills loaded).
    :raise Forbidden: the actor lists no members, or asks for a branch outside their scope.
    :raise ValidationFailed: an unknown skill code.
    """
    scope = member_list_scope(actor)
    query: Select[Any] = select(Member)
    if branch is not None:
        (branch_id,) = _branch_ids(session, [branch], "branch")
        if scope is not None:
            scope = {(b, t) for b, t in scope if b == branch_id}
            require(bool(scope), "You coordinate other branches.")
        query = query.where(
            exists().where(MemberBranch.member_id == Member.id, MemberBranch.branch_id == branch_id)
        )
    if scope is not None:
        query = query.where(_in_scope(scope))
    if town is not None:
        query = query.where(Member.town_id == town)
    if skill is not None:
        skill_id = _skill_ids(session, [skill], "skill")[skill]
        today = local_day(utcnow())  # a certificate's last day is a day of the federation
        query = query.where(
            exists().where(
                MemberSkill.member_id == Member.id,
                MemberSkill.skill_id == skill_id,
                or_(MemberSkill.expires_on.is_(None), MemberSkill.expires_on >= today),
            )
        )
    if q:
        fragment = q.strip()
        matches = [Member.name.contains(fragment, autoescape=True)]
        if fragment.isdigit():
            matches.append(Member.phone.contains(fragment, autoescape=True))
        query = query.where(or_(*matches))
    if status is not None:
        query = query.where(Member.status == MemberStatus(status))
    query = query.order_by(Member.id).options(
        selectinload(Member.branches), selectinload(Member.skills)
    )
    return paginate(session, query, page, page_size)


def _in_scope(scope: set[tuple[int, int | None]]) -> ColumnElement[bool]:
    """Members of a branch of the scope, in the town it names (town None: any town)."""
    whole = sorted(b for b, t in scope if t is None)
    conditions: list[ColumnElement[bool]] = [
        exists().where(MemberBranch.member_id == Member.id, MemberBranch.branch_id.in_(whole))
    ]
    conditions += [
        and_(
            Member.town_id == town,
            exists().where(MemberBranch.member_id == Member.id, MemberBranch.branch_id == b),
        )
        for b, town in sorted(scope, key=lambda pair: (pair[0], pair[1] or 0))
        if town is not None and b not in whole
    ]
    return or_(*conditions)


def get_member(session: Session, actor: Actor, member_id: int) -> Member:
    """:raise NotFound: no such member, or one the actor may not see."""
    member = load_member(session, member_id)
    require_visible(member is not None and can_view_member(actor, member), "member")
    assert member is not None
    return member


# ---------------------------------------------------------------------- writing


def _check_phone_free(session: Session, phone: str, member_id: int | None = None) -> None:
    """:raise Conflict: another member has this phone."""
    other = session.scalar(select(Member.id).where(Member.phone == phone))
    if other is not None and other != member_id:
        raise Conflict(
            "Another member has this phone number.", errors={"phone": ["Already registered."]}
        )


def _check_refs(session: Session, data: dict[str, Any]) -> None:
    """:raise ValidationFailed: the town or organisation does not exist, or home is half given."""
    if data.get("town") is not None and session.get(Town, data["town"]) is None:
        raise _invalid("town", "No such town.")
    if (
        data.get("organization") is not None
        and session.get(Organization, data["organization"]) is None
    ):
        raise _invalid("organization", "No such organisation.")


def _check_home(member: Member) -> None:
    if (member.home_lat is None) != (member.home_lon is None):
        raise _invalid("home_lat", "Give both home_lat and home_lon, or neither.")


def _identity_defaults(data: dict[str, Any]) -> None:
    """Birth year and gender follow from a resident identity number when not given."""
    number = data.get("id_number")
    if not number:
        return
    if data.get("birth_year") is None:
        data["birth_year"] = int(number[6:10])
    if data.get("gender") is None:
        data["gender"] = "male" if int(number[16]) % 2 else "female"


def _set_skills(session: Session, member: Member, skills: list[dict[str, Any]]) -> None:
    ids = _skill_ids(session, [s["code"] for s in skills])
    expiry = {s["code"]: s.get("expires_on") for s in skills}
    member.skills = [
        MemberSkill(skill=session.get_one(Skill, sid), expires_on=expiry[code])
        for code, sid in ids.items()
    ]


_PLAIN_FIELDS = {
    "name": "name",
    "phone": "phone",
    "id_number": "id_number",
    "gender": "gender",
    "birth_year": "birth_year",
    "town": "town_id",
    "home_lat": "home_lat",
    "home_lon": "home_lon",
    "is_core": "is_core",
    "organization": "organization_id",
}


def _apply(session: Session, member: Member, data: dict[str, Any]) -> None:
    for field, attribute in _PLAIN_FIELDS.items():
        if field in data:
            setattr(member, attribute, data[field])
    if "branches" in data:
        member.branches = [
            session.get_one(Branch, branch_id)
            for branch_id in _branch_ids(session, data["branches"])
        ]
    if "skills" in data:
        _set_skills(session, member, data["skills"])
    _check_home(member)


@contextmanager
def _phone_unique(session: Session) -> Iterator[None]:
    """Turn the unique-phone violation of a concurrent registration into a 409.

    The phone is checked first for a clear answer; two requests racing past that check meet
    the unique constraint at flush or commit, whichever comes first.

    :raise Conflict: the phone was taken meanwhile.
    """
    try:
        yield
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "Another member has this phone number.", errors={"phone": ["Already registered."]}
        ) from None


def create_member(session: Session, actor: Actor, data: dict[str, Any]) -> Member:
    """Register a member in the given branches.

    :param data: the fields of MemberCreateArgs; without `password` a random one is set, so the
        member cannot sign in until someone activates the account.
    :return: the new member.
    :raise Forbidden: the actor coordinates not all of the branches in the member's town (and
        is not an admin).
    :raise ValidationFailed: unknown town, organisation, branch or skill; half a home location.
    :raise Conflict: the phone is already registered.
    """
    branch_ids = _branch_ids(session, data["branches"])
    require(
        can_manage_member(actor, branch_ids, data.get("town")),
        "Only a coordinator of every branch given (in the member's town), or an admin, "
        "adds members.",
    )
    _check_refs(session, data)
    _check_phone_free(session, data["phone"])
    data = dict(data)
    _identity_defaults(data)
    password = data.pop("password", None) or secrets.token_urlsafe(24)
    member = Member(
        status=MemberStatus.ACTIVE, password_hash=hash_password(password), token_version=0
    )
    member.is_core = False
    member.skills = []
    with _phone_unique(session):
        _apply(session, member, data)
        session.add(member)
        session.flush()
        audit.record(
            session, actor.member_id, "member.create", "member", member.id, after=snapshot(member)
        )
        session.commit()
    return member


def update_member(session: Session, actor: Actor, member_id: int, data: dict[str, Any]) -> Member:
    """Change a member's record; audited with before and after.

    :raise NotFound: the actor may not see the member.
    :raise Forbidden: the actor may not manage the member's current or new branches and town.
    :raise ValidationFailed: unknown references or half a home location.
    :raise Conflict: the new phone belongs to another member.
    """
    member = managed_member(session, actor, member_id, "changes members")
    if "branches" in data or "town" in data:
        branch_ids = (
            _branch_ids(session, data["branches"])
            if "branches" in data
            else [b.id for b in member.branches]
        )
        require(
            can_manage_member(actor, branch_ids, data.get("town", member.town_id)),
            "You may only move members into branches and towns you coordinate.",
        )
    _check_refs(session, data)
    if "phone" in data:
        _check_phone_free(session, data["phone"], member.id)
    data = dict(data)
    if data.get("id_number"):
        for field in ("birth_year", "gender"):
            data.setdefault(field, None)
        _identity_defaults(data)
    before, private_before = snapshot(member), _private_values(member)
    with _phone_unique(session):
        _apply(session, member, data)
        after = snapshot(member) | private_changes(private_before, member)
        if after != before:
            audit.record(
                session,
                actor.member_id,
                "member.update",
                "member",
                member.id,
                before=before,
                after=after,
            )
        session.commit()
    return member


def set_status(
    session: Session, actor: Actor, member_id: int, status: MemberStatus, reason: str
) -> Member:
    """Suspend (status SUSPENDED) or reactivate (ACTIVE) a member, with a reason; audited.

    A suspended member's refresh tokens are revoked and their access tokens stop working,
    because the policy refuses members who are not active.

    :raise NotFound: the actor may not see the member.
    :raise Forbidden: the actor may not manage the member, or tries to suspend themself.
    :raise Conflict: the member is not in a state this change applies to.
    """
    member = managed_member(session, actor, member_id, "suspends members")
    if member.id == actor.member_id:
        raise Forbidden("You cannot change your own status.")
    expected = MemberStatus.ACTIVE if status == MemberStatus.SUSPENDED else MemberStatus.SUSPENDED
    if member.status != expected:
        raise Conflict(f"The member is {member.status.value}, not {expected.value}.")
    before = {"status": member.status.value}
    member.status = status
    if status == MemberStatus.SUSPENDED:
        revoke_all_for_member(member.id)
    action = "member.suspend" if status == MemberStatus.SUSPENDED else "member.reactivate"
    audit.record(
        session,
        actor.member_id,
        action,
        "member",
        member.id,
        before=before,
        after={"status": status.value},
        reason=reason,
    )
    session.commit()
    return member


# Which scope each role takes: (branch required, town required, scope allowed at all).
_ROLE_SCOPES: dict[Role, tuple[bool, bool, bool]] = {
    Role.VOLUNTEER: (False, False, True),
    Role.SQUAD_LEADER: (True, True, True),
    Role.COORDINATOR: (True, False, True),
    Role.GRID_WORKER: (False, True, True),
    Role.SECRETARY_GENERAL: (False, False, False),
    Role.ADMIN: (False, False, False),
}


def _check_scope(role: Role, branch_id: int | None, town: int | None) -> None:
    branch_needed, town_needed, scoped = _ROLE_SCOPES[role]
    if not scoped and (branch_id is not None or town is not None):
        raise _invalid("branch", f"The {role.value} role is federation-wide: no branch or town.")
    if branch_needed and branch_id is None:
        raise _invalid("branch", f"The {role.value} role needs a branch.")
    if town_needed and town is None:
        raise _invalid("town", f"The {role.value} role needs a town.")


def grant_role(
    session: Session,
    actor: Actor,
    member_id: int,
    role: Role,
    branch: str | None = None,
    town: int | None = None,
) -> RoleGrant:
    """Grant a scoped role; audited.

    :raise NotFound: the actor may not see the member.
    :raise Forbidden: the policy's `can_grant` refuses.
    :raise ValidationFailed: the scope does not suit the role, unknown town, or a squad leader
        outside their branch.
    :raise Conflict: the member already holds this grant.
    """
    member = load_member(session, member_id, for_update=True)
    require_visible(member is not None and can_view_member(actor, member), "member")
    assert member is not None
    branch_id = _branch_ids(session, [branch], "branch")[0] if branch else None
    require(can_grant(actor, role, branch_id, town), "Your role may not grant this role.")
    _check_scope(role, branch_id, town)
    if town is not None and session.get(Town, town) is None:
        raise _invalid("town", "No such town.")
    if role == Role.SQUAD_LEADER and branch_id not in {b.id for b in member.branches}:
        raise _invalid("branch", "A squad leader must be a member of that branch.")
    if any((g.role, g.branch_id, g.town_id) == (role, branch_id, town) for g in member.roles):
        raise Conflict("The member already holds this role.")
    grant = RoleGrant(role=role, branch_id=branch_id, town_id=town, granted_by=actor.member_id)
    member.roles.append(grant)
    try:
        session.flush()
        audit.record(
            session,
            actor.member_id,
            "role.grant",
            "member",
            member.id,
            after={"grant": grant.id, "role": role.value, "branch": branch, "town": town},
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("The member already holds this role.") from None
    return grant


def revoke_role(session: Session, actor: Actor, member_id: int, grant_id: int) -> None:
    """Withdraw one grant; audited.

    :raise NotFound: the member is hidden, or the grant is not theirs.
    :raise Forbidden: the policy's `can_grant` refuses for this role and branch.
    """
    member = load_member(session, member_id, for_update=True)
    require_visible(member is not None and can_view_member(actor, member), "member")
    assert member is not None
    grant = next((g for g in member.roles if g.id == grant_id), None)
    if grant is None:
        raise NotFound("No such role grant.")
    require(
        can_grant(actor, grant.role, grant.branch_id, grant.town_id),
        "Your role may not withdraw this role.",
    )
    before = {
        "grant": grant.id,
        "role": grant.role.value,
        "branch": grant.branch.code if grant.branch else None,
        "town": grant.town_id,
    }
    member.roles.remove(grant)
    audit.record(session, actor.member_id, "role.revoke", "member", member.id, before=before)
    session.commit()


# ---------------------------------------------------------------------- availability


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def merge_windows(windows: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """Windows as (weekday, start minute, end minute), overlapping or touching ones merged.

    :raise ValidationFailed: a window that ends before it starts (split one crossing midnight).
    """
    spans: list[tuple[int, int, int]] = []
    for index, window in enumerate(windows):
        start, end = _minutes(window["start"]), _minutes(window["end"])
        if end <= start:
            raise _invalid(
                f"windows[{index}].end",
                "The end must be after the start; split a window across midnight in two.",
            )
        spans.append((window["weekday"], start, end))
    merged: list[tuple[int, int, int]] = []
    for weekday, start, end in sorted(spans):
        if merged and merged[-1][0] == weekday and start <= merged[-1][2]:
            last = merged[-1]
            merged[-1] = (weekday, last[1], max(last[2], end))
        else:
            merged.append((weekday, start, end))
    return merged


def get_availability(session: Session, member_id: int) -> list[dict[str, Any]]:
    """:return: the member's weekly windows, by weekday and start."""
    rows = session.scalars(
        select(Availability)
        .where(Availability.member_id == member_id)
        .order_by(Availability.weekday, Availability.start_minute)
    )
    return [
        {"weekday": r.weekday, "start": _clock(r.start_minute), "end": _clock(r.end_minute)}
        for r in rows
    ]


def replace_availability(
    session: Session, member_id: int, windows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace the member's weekly windows; overlapping windows are merged.

    :return: the stored windows.
    :raise ValidationFailed: a window ends before it starts.
    """
    merged = merge_windows(windows)
    session.execute(delete(Availability).where(Availability.member_id == member_id))
    session.add_all(
        Availability(member_id=member_id, weekday=w, start_minute=s, end_minute=e)
        for w, s, e in merged
    )
    session.commit()
    return get_availability(session, member_id)


# ---------------------------------------------------------------------- leave


def add_leave(
    session: Session,
    member_id: int,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> Leave:
    """Record a leave of the member.

    :raise ValidationFailed: the end is not after the start, lies in the past, or the leave is
        longer than a year.
    :raise Conflict: it overlaps a leave the member already has.
    """
    now = now or utcnow()
    if ends_at <= starts_at:
        raise _invalid("ends_at", "The end must be after the start.")
    if ends_at - starts_at > MAX_LEAVE:
        raise _invalid("ends_at", "A leave lasts at most a year.")
    if ends_at <= now:
        raise _invalid("ends_at", "The leave is already over.")
    overlapping = session.scalar(
        select(Leave.id).where(
            Leave.member_id == member_id, Leave.starts_at < ends_at, Leave.ends_at > starts_at
        )
    )
    if overlapping is not None:
        raise Conflict(
            "This overlaps another leave of yours; change or delete that one.",
            extra={"leave": overlapping},
        )
    leave = Leave(member_id=member_id, starts_at=starts_at, ends_at=ends_at, reason=reason)
    session.add(leave)
    session.commit()
    return leave


def list_leaves(
    session: Session, member_id: int, *, include_past: bool, page: int, page_size: int
) -> dict[str, Any]:
    """:return: a page of the member's leaves, soonest first."""
    query = select(Leave).where(Leave.member_id == member_id)
    if not include_past:
        query = query.where(Leave.ends_at > utcnow())
    return paginate(session, query.order_by(Leave.starts_at, Leave.id), page, page_size)


def delete_leave(session: Session, member_id: int, leave_id: int) -> None:
    """Withdraw one of the member's leaves; audited, since plans may have been made around it.

    :raise NotFound: no such leave of this member.
    """
    leave = session.scalar(select(Leave).where(Leave.id == leave_id, Leave.member_id == member_id))
    if leave is None:
        raise NotFound("No such leave.")
    audit.record(
        session,
        member_id,
        "leave.delete",
        "leave",
        leave.id,
        before={
            "starts_at": leave.starts_at.isoformat(),
            "ends_at": leave.ends_at.isoformat(),
            "reason": leave.reason,
        },
    )
    session.delete(leave)
    session.commit()
