"""The permission policy, in one place.

Roles are granted with an optional branch and town scope. Views call these functions; a
caller who may not see an object gets NotFound (404), so ids of other people's records reveal
nothing; a caller who may see but not act gets Forbidden (403).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import g
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from volunteer_hub.errors import Forbidden, NotFound, Unauthorized
from volunteer_hub.extensions import db
from volunteer_hub.models import Member, MemberStatus, Role


@dataclass(frozen=True)
class Grant:
    role: Role
    branch_id: int | None
    town_id: int | None


@dataclass(frozen=True)
class Actor:
    """The signed-in member and what they were granted."""

    member_id: int
    grants: tuple[Grant, ...]
    branch_ids: frozenset[int]
    town_id: int | None

    def has(self, role: Role, branch_id: int | None = None, town_id: int | None = None) -> bool:
        """True if a grant of `role` covers the branch and town (an unscoped grant covers all)."""
        return any(
            grant.role == role
            and (grant.branch_id is None or branch_id is None or grant.branch_id == branch_id)
            and (grant.town_id is None or town_id is None or grant.town_id == town_id)
            for grant in self.grants
        )

    @property
    def is_admin(self) -> bool:
        return any(grant.role == Role.ADMIN for grant in self.grants)

    @property
    def is_secretary_general(self) -> bool:
        return any(grant.role == Role.SECRETARY_GENERAL for grant in self.grants)

    @property
    def sees_everything(self) -> bool:
        return self.is_admin or self.is_secretary_general

    def branches_as(self, role: Role) -> set[int] | None:
        """Branch ids in which the actor holds `role`; None means every branch."""
        scopes = [grant.branch_id for grant in self.grants if grant.role == role]
        if any(scope is None for scope in scopes):
            return None
        return {scope for scope in scopes if scope is not None}

    def coordinates(self, branch_id: int) -> bool:
        return self.has(Role.COORDINATOR, branch_id=branch_id)

    def coordinates_any(self, branch_ids: Iterable[int]) -> bool:
        return any(self.coordinates(branch_id) for branch_id in branch_ids)

    def leads_squad(self, branch_id: int, town_id: int | None) -> bool:
        return any(
            grant.role == Role.SQUAD_LEADER
            and grant.branch_id in (None, branch_id)
            and grant.town_id in (None, town_id)
            for grant in self.grants
        )


def load_actor(member_id: int, token_version: int | None = None) -> Actor:
    """:raise Unauthorized: the member is gone, not active, or changed password since."""
    member = db.session.scalar(
        select(Member)
        .where(Member.id == member_id)
        .options(selectinload(Member.roles), selectinload(Member.branches))
    )
    if member is None or member.status != MemberStatus.ACTIVE:
        raise Unauthorized("This account cannot sign in.")
    if token_version is not None and token_version != member.token_version:
        raise Unauthorized("The password was changed; sign in again.")
    grants = tuple(Grant(r.role, r.branch_id, r.town_id) for r in member.roles)
    if not any(grant.role == Role.VOLUNTEER for grant in grants):
        grants += (Grant(Role.VOLUNTEER, None, None),)
    return Actor(
        member_id=member.id,
        grants=grants,
        branch_ids=frozenset(branch.id for branch in member.branches),
        town_id=member.town_id,
    )


def current_actor() -> Actor:
    """The signed-in caller; verifies the bearer token.

    :raise Unauthorized: no valid access token.
    """
    actor: Actor | None = g.get("actor")
    if actor is None:
        verify_jwt_in_request()
        claims = get_jwt()
        try:
            member_id = int(claims["sub"])
        except (KeyError, ValueError):
            raise Unauthorized("The token is not valid.") from None
        actor = load_actor(member_id, claims.get("tv"))
        g.actor = actor
    return actor


def require(condition: bool, detail: str = "Your role does not allow this.") -> None:
    """:raise Forbidden: unless condition holds."""
    if not condition:
        raise Forbidden(detail)


def require_visible(condition: bool, what: str = "object") -> None:
    """:raise NotFound: unless condition holds, so that hidden objects look absent."""
    if not condition:
        raise NotFound(f"No such {what}.")


# ---------------------------------------------------------------------- members


def member_branch_ids(member: Member) -> set[int]:
    return {branch.id for branch in member.branches}


def can_see_private(actor: Actor, member: Member) -> bool:
    """Unmasked phone and identity number: the member, their coordinators, the SG, admins."""
    return (
        actor.member_id == member.id
        or actor.sees_everything
        or actor.coordinates_any(member_branch_ids(member))
    )


def can_view_member(actor: Actor, member: Member) -> bool:
    if can_see_private(actor, member):
        return True
    return any(
        actor.leads_squad(branch_id, member.town_id) for branch_id in member_branch_ids(member)
    )


def can_list_members(actor: Actor, branch_id: int | None) -> bool:
    if actor.sees_everything:
        return True
    if branch_id is None:
        return actor.branches_as(Role.COORDINATOR) is None and actor.has(Role.COORDINATOR)
    return actor.coordinates(branch_id)


def member_list_scope(actor: Actor) -> set[int] | None:
    """Branches whose members the actor may list; None = all.

    :raise Forbidden: the actor may list no members.
    """
    if actor.sees_everything:
        return None
    scope = actor.branches_as(Role.COORDINATOR)
    if scope is None:
        return None
    require(bool(scope), "Only coordinators, the secretary-general and admins list members.")
    return scope


def can_manage_member(actor: Actor, branch_ids: Iterable[int]) -> bool:
    """Add, change or suspend a member of these branches."""
    ids = list(branch_ids)
    return actor.is_admin or (bool(ids) and all(actor.coordinates(b) for b in ids))


def can_grant(actor: Actor, role: Role, branch_id: int | None) -> bool:
    if actor.is_admin:
        return True
    if actor.is_secretary_general:
        return role != Role.ADMIN
    if role in (Role.SQUAD_LEADER, Role.GRID_WORKER, Role.VOLUNTEER) and branch_id is not None:
        return actor.coordinates(branch_id)
    return False


# ---------------------------------------------------------------------- masking


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_id_number(number: str | None) -> str | None:
    if not number:
        return number
    return number[:4] + "*" * max(len(number) - 8, 4) + number[-4:] if len(number) > 8 else "****"


# ---------------------------------------------------------------------- shift plans
# Posts, plans, solve runs and assignments belong to a branch: its coordinators manage them,
# the secretary-general and admins may look at all of them.


def can_manage_branch_plans(actor: Actor, branch_id: int) -> bool:
    """Create posts and plans, solve, adjust and publish in this branch."""
    return actor.is_admin or actor.coordinates(branch_id)


def can_view_branch_plans(actor: Actor, branch_id: int) -> bool:
    return actor.sees_everything or actor.coordinates(branch_id)


def plan_branch_scope(actor: Actor) -> set[int] | None:
    """Branches whose plans the actor may list; None = all.

    :raise Forbidden: the actor coordinates no branch and is not federation-wide.
    """
    if actor.sees_everything:
        return None
    scope = actor.branches_as(Role.COORDINATOR)
    if scope is None:
        return None
    require(bool(scope), "Only coordinators, the secretary-general and admins see plans.")
    return scope


# ---------------------------------------------------------------------- incidents
# An incident belongs to a branch. Grid workers, squad leaders and coordinators of the branch
# report; its coordinators (and the secretary-general, admins) manage and see everything; the
# reporter and every volunteer offered the incident may see it; everyone else finds nothing.


def can_report_incident(actor: Actor, branch_id: int) -> bool:
    return (
        actor.sees_everything
        or actor.coordinates(branch_id)
        or actor.has(Role.GRID_WORKER, branch_id=branch_id)
        or actor.has(Role.SQUAD_LEADER, branch_id=branch_id)
    )


def can_manage_incident(actor: Actor, branch_id: int) -> bool:
    """Dispatch by hand, cancel, resolve, see every offer and the timeline."""
    return actor.sees_everything or actor.coordinates(branch_id)


def can_view_incident(actor: Actor, branch_id: int, reporter_id: int, offered: bool) -> bool:
    return offered or actor.member_id == reporter_id or can_manage_incident(actor, branch_id)


def incident_list_scope(actor: Actor) -> set[int] | None:
    """Branches whose incidents the actor may list; None = all.

    :raise Forbidden: the actor coordinates no branch and is not federation-wide.
    """
    if actor.sees_everything:
        return None
    scope = actor.branches_as(Role.COORDINATOR)
    if scope is None:
        return None
    require(bool(scope), "Only coordinators, the secretary-general and admins list incidents.")
    return scope


# ---------------------------------------------------------------------- notifications
# Announcements go to a branch, a town, or a branch in a town. A coordinator announces within
# what their grant covers: a grant for (patrol, town 5) reaches patrol members of town 5, not
# the whole patrol branch. A town across every branch is the secretary-general's or an admin's.
# The outbox (failed pushes) is for the secretary-general and admins.


def may_announce_at_all(actor: Actor) -> bool:
    return actor.sees_everything or actor.has(Role.COORDINATOR)


def can_announce(actor: Actor, branch_id: int | None, town_id: int | None) -> bool:
    if actor.sees_everything:
        return True
    if branch_id is None:
        return False
    return any(
        grant.role == Role.COORDINATOR
        and grant.branch_id in (None, branch_id)
        and (grant.town_id is None or grant.town_id == town_id)
        for grant in actor.grants
    )


def can_view_outbox(actor: Actor) -> bool:
    return actor.sees_everything


# ---------------------------------------------------------------------- attendance and hours
# Attendance at a post belongs to the post's (branch, town): its squad leader and the branch's
# coordinators confirm and correct it; the secretary-general and admins may too. Hours reports
# are federation-wide for the secretary-general and admins, one branch for its coordinators.


def can_manage_attendance(actor: Actor, branch_id: int, town_id: int | None) -> bool:
    """Confirm, correct a check-in or check-out of an assignment at a post of this scope."""
    return (
        actor.sees_everything
        or actor.coordinates(branch_id)
        or actor.leads_squad(branch_id, town_id)
    )


def can_award_hours(actor: Actor, branch_id: int) -> bool:
    """Award off-plan hours or reverse a ledger entry in the branch."""
    return actor.sees_everything or actor.coordinates(branch_id)


def hours_report_scope(actor: Actor, branch_id: int | None) -> frozenset[int] | None:
    """Branches a report may cover; None = all. A coordinator asking for no branch gets theirs.

    :raise Forbidden: not a coordinator, secretary-general or admin, or another branch.
    """
    if actor.sees_everything:
        return None if branch_id is None else frozenset({branch_id})
    scope = actor.branches_as(Role.COORDINATOR)
    require(
        scope is None or bool(scope),
        "Only coordinators, the secretary-general and admins see hours reports.",
    )
    if branch_id is not None:
        require(scope is None or branch_id in scope, "You coordinate another branch.")
        return frozenset({branch_id})
    return None if scope is None else frozenset(scope)
