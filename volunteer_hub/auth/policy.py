"""The permission policy, in one place.

Roles are granted with an optional branch and town scope. Views call these functions; a
caller who may not see an object gets NotFound (404), so ids of other people's records reveal
nothing; a caller who may see but not act gets Forbidden (403).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import g
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from sqlalchemy import literal, select

from volunteer_hub.errors import Forbidden, NotFound, Unauthorized
from volunteer_hub.extensions import db
from volunteer_hub.models import Member, MemberBranch, MemberStatus, RefreshToken, Role, RoleGrant


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
        """Holds any coordinator grant of the branch, whatever its town; for objects that lie
        in a town use `coordinates_in`."""
        return self.has(Role.COORDINATOR, branch_id=branch_id)

    def coordinates_in(self, branch_id: int, town_id: int | None) -> bool:
        """Coordinates the branch where an object of `town_id` lies: a branch-wide grant
        covers every town, a grant for a town only that town (not an object of no town)."""
        return any(
            grant.role == Role.COORDINATOR
            and grant.branch_id in (None, branch_id)
            and grant.town_id in (None, town_id)
            for grant in self.grants
        )

    def leads_squad(self, branch_id: int, town_id: int | None) -> bool:
        return any(
            grant.role == Role.SQUAD_LEADER
            and grant.branch_id in (None, branch_id)
            and grant.town_id in (None, town_id)
            for grant in self.grants
        )


@dataclass(frozen=True)
class SignIn:
    """What one query says about a token: whether its family was revoked, and the member's
    status, token version, town, grants and branches (None when there is no such member)."""

    revoked: bool
    member: tuple[int, MemberStatus, int, int | None] | None
    grants: tuple[Grant, ...]
    branch_ids: frozenset[int]


def fetch_sign_in(member_id: int, family: str | None) -> SignIn:
    """Everything the request needs to know about its caller, in one round trip.

    Roles and branches come as the (small) product of two outer joins; the revocation check
    of the token's family is an EXISTS on the indexed family column.
    """
    revoked: Any = literal(False)
    if family is not None:
        revoked = (
            select(RefreshToken.jti)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_not(None))
            .exists()
        )
    rows = db.session.execute(
        select(
            Member.id,
            Member.status,
            Member.token_version,
            Member.town_id,
            revoked.label("revoked"),
            RoleGrant.role,
            RoleGrant.branch_id,
            RoleGrant.town_id,
            MemberBranch.branch_id,
        )
        .outerjoin(RoleGrant, RoleGrant.member_id == Member.id)
        .outerjoin(MemberBranch, MemberBranch.member_id == Member.id)
        .where(Member.id == member_id)
    ).all()
    if not rows:
        # No member: still say whether the token was revoked, which is answered first.
        gone = family is not None and db.session.scalar(select(revoked)) is True
        return SignIn(bool(gone), None, (), frozenset())
    first = rows[0]
    grants = {Grant(r[5], r[6], r[7]) for r in rows if r[5] is not None}
    return SignIn(
        revoked=bool(first[4]),
        member=(first[0], first[1], first[2], first[3]),
        grants=tuple(
            sorted(grants, key=lambda g: (g.role.value, g.branch_id or 0, g.town_id or 0))
        ),
        branch_ids=frozenset(r[8] for r in rows if r[8] is not None),
    )


def actor_from(sign_in: SignIn, token_version: int | None = None) -> Actor:
    """:raise Unauthorized: the member is gone, not active, or changed password since."""
    if sign_in.member is None or sign_in.member[1] != MemberStatus.ACTIVE:
        raise Unauthorized("This account cannot sign in.")
    member_id, _status, current_version, town_id = sign_in.member
    if token_version is not None and token_version != current_version:
        raise Unauthorized("The password was changed; sign in again.")
    grants = sign_in.grants
    if not any(grant.role == Role.VOLUNTEER for grant in grants):
        grants += (Grant(Role.VOLUNTEER, None, None),)
    return Actor(member_id=member_id, grants=grants, branch_ids=sign_in.branch_ids, town_id=town_id)


def load_actor(member_id: int, token_version: int | None = None) -> Actor:
    """:raise Unauthorized: the member is gone, not active, or changed password since."""
    return actor_from(fetch_sign_in(member_id, None), token_version)


def current_actor() -> Actor:
    """The signed-in caller; verifies the bearer token (once per request).

    The token check (`auth.tokens._is_revoked`) already read the member with its roles and
    branches in the same query; that is reused here instead of asking the database again.

    :raise Unauthorized: no valid access token.
    """
    actor: Actor | None = g.get("actor")
    if actor is None:
        try:
            claims = get_jwt()  # already verified by @jwt_required in this request
        except RuntimeError:
            claims = {}
        if not claims:
            verify_jwt_in_request()
            claims = get_jwt()
        try:
            member_id = int(claims["sub"])
        except (KeyError, ValueError):
            raise Unauthorized("The token is not valid.") from None
        prefetched = g.get("sign_in")
        if prefetched is not None and prefetched[0] == claims.get("jti"):
            sign_in = prefetched[1]
        else:
            sign_in = fetch_sign_in(member_id, None)
        actor = actor_from(sign_in, claims.get("tv"))
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
    """Unmasked phone and identity number: the member, their coordinators (of a branch of
    theirs, in their town for a town-scoped grant), the SG, admins."""
    return (
        actor.member_id == member.id
        or actor.sees_everything
        or any(actor.coordinates_in(b, member.town_id) for b in member_branch_ids(member))
    )


def can_view_member(actor: Actor, member: Member) -> bool:
    if can_see_private(actor, member):
        return True
    return any(
        actor.leads_squad(branch_id, member.town_id) for branch_id in member_branch_ids(member)
    )


def member_list_scope(actor: Actor) -> set[tuple[int, int | None]] | None:
    """(branch, town) pairs whose members the actor may list, town None for every town of the
    branch (a branch-wide coordinator grant); None = all members.

    :raise Forbidden: the actor may list no members.
    """
    if actor.sees_everything or actor.branches_as(Role.COORDINATOR) is None:
        return None
    scope = {
        (grant.branch_id, grant.town_id)
        for grant in actor.grants
        if grant.role == Role.COORDINATOR and grant.branch_id is not None
    }
    require(bool(scope), "Only coordinators, the secretary-general and admins list members.")
    return scope


# The roles a coordinator stands above: those whose grants `can_grant` lets them give.
_BELOW_COORDINATOR = frozenset({Role.SQUAD_LEADER, Role.GRID_WORKER, Role.VOLUNTEER})


def can_manage_member(
    actor: Actor, branch_ids: Iterable[int], town_id: int | None, grants: Iterable[Grant] = ()
) -> bool:
    """Add, change, suspend or issue a sign-in code to a member of these branches living in
    this town and holding these grants (none for a member being added).

    An admin manages everyone. A coordinator manages a member of branches they all coordinate
    in the member's town (`coordinates_in`) who holds no role the coordinator could not grant
    (as `can_grant` reasons): volunteers, grid workers and squad leaders, never a coordinator,
    the secretary-general or an admin, whose account a sign-in code would otherwise hand them.
    """
    if actor.is_admin:
        return True
    ids = list(branch_ids)
    return (
        bool(ids)
        and all(actor.coordinates_in(b, town_id) for b in ids)
        and all(
            grant.role in _BELOW_COORDINATOR
            and (
                grant.branch_id is None
                or actor.coordinates_in(
                    grant.branch_id, town_id if grant.town_id is None else grant.town_id
                )
            )
            for grant in grants
        )
    )


def can_grant(actor: Actor, role: Role, branch_id: int | None, town_id: int | None) -> bool:
    """Grant or withdraw a role scoped to this branch and town; a town-scoped coordinator
    only within their town."""
    if actor.is_admin:
        return True
    if actor.is_secretary_general:
        return role != Role.ADMIN
    if role in _BELOW_COORDINATOR and branch_id is not None:
        return actor.coordinates_in(branch_id, town_id)
    return False


# ---------------------------------------------------------------------- masking


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_id_number(number: str | None) -> str | None:
    if not number:
        return number
    return number[:4] + "*" * max(len(number) - 8, 4) + number[-4:] if len(number) > 8 else "****"


# ---------------------------------------------------------------------- shift plans
# Posts, plans, solve runs and assignments belong to a branch and a town: a post lies in one
# town, a plan covers one town or (town None) the whole branch. The branch's coordinators
# manage them, a town-scoped coordinator those of their town only (not a plan of the whole
# branch); the secretary-general and admins may look at all of them.


def can_manage_branch_plans(actor: Actor, branch_id: int, town_id: int | None) -> bool:
    """Create posts and plans, solve, adjust and publish in this branch and town (None: a
    plan of the whole branch, which only a branch-wide coordinator grant covers)."""
    return actor.is_admin or actor.coordinates_in(branch_id, town_id)


def can_view_branch_plans(actor: Actor, branch_id: int, town_id: int | None) -> bool:
    return actor.sees_everything or actor.coordinates_in(branch_id, town_id)


def plan_branch_scope(actor: Actor) -> set[tuple[int, int | None]] | None:
    """(branch, town) pairs whose plans the actor may list, town None for every plan of the
    branch (a branch-wide coordinator grant); None = all.

    :raise Forbidden: the actor coordinates no branch and is not federation-wide.
    """
    if actor.sees_everything or actor.branches_as(Role.COORDINATOR) is None:
        return None
    scope = {
        (grant.branch_id, grant.town_id)
        for grant in actor.grants
        if grant.role == Role.COORDINATOR and grant.branch_id is not None
    }
    require(bool(scope), "Only coordinators, the secretary-general and admins see plans.")
    return scope


# ---------------------------------------------------------------------- incidents
# An incident belongs to a branch and lies in a town (the one reported, else the nearest).
# Grid workers, squad leaders and coordinators of the branch report; its coordinators (of the
# incident's town, for a town-scoped grant; an incident of no town is for branch-wide grants)
# and the secretary-general, admins manage and see everything; the reporter and every
# volunteer offered the incident may see it; everyone else finds nothing.


def can_report_incident(actor: Actor, branch_id: int) -> bool:
    return (
        actor.sees_everything
        or actor.coordinates(branch_id)
        or actor.has(Role.GRID_WORKER, branch_id=branch_id)
        or actor.has(Role.SQUAD_LEADER, branch_id=branch_id)
    )


def can_manage_incident(actor: Actor, branch_id: int, town_id: int | None) -> bool:
    """Dispatch by hand, cancel, resolve, see every offer and the timeline."""
    return actor.sees_everything or actor.coordinates_in(branch_id, town_id)


def can_view_incident(
    actor: Actor, branch_id: int, town_id: int | None, reporter_id: int, offered: bool
) -> bool:
    return (
        offered or actor.member_id == reporter_id or can_manage_incident(actor, branch_id, town_id)
    )


def incident_list_scope(actor: Actor) -> set[tuple[int, int | None]] | None:
    """(branch, town) pairs whose incidents the actor may list, town None for every incident
    of the branch (a branch-wide coordinator grant); None = all.

    :raise Forbidden: the actor coordinates no branch and is not federation-wide.
    """
    if actor.sees_everything or actor.branches_as(Role.COORDINATOR) is None:
        return None
    scope = {
        (grant.branch_id, grant.town_id)
        for grant in actor.grants
        if grant.role == Role.COORDINATOR and grant.branch_id is not None
    }
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
# coordinators (for a town-scoped grant, of that town) confirm and correct it; the
# secretary-general and admins may too. Hours reports are federation-wide for the
# secretary-general and admins, one branch for its coordinators (its towns they coordinate, for
# town-scoped grants).


def can_manage_attendance(actor: Actor, branch_id: int, town_id: int | None) -> bool:
    """Confirm, correct a check-in or check-out of an assignment at a post of this scope."""
    return (
        actor.sees_everything
        or actor.coordinates_in(branch_id, town_id)
        or actor.leads_squad(branch_id, town_id)
    )


def can_award_hours(actor: Actor, branch_id: int, town_id: int | None = None) -> bool:
    """Award off-plan hours or reverse a ledger entry in the branch and town (None: an entry of
    no town, which only a branch-wide coordinator grant covers)."""
    return actor.sees_everything or actor.coordinates_in(branch_id, town_id)


@dataclass(frozen=True)
class ReportScope:
    """What an hours report may count: the branches (None: every branch) and, for branches the
    actor coordinates in some towns only, those towns as (branch, towns) pairs; a branch of
    `branch_ids` not among them counts in every town."""

    branch_ids: frozenset[int] | None
    towns: tuple[tuple[int, frozenset[int]], ...] = ()


def hours_report_scope(actor: Actor, branch_id: int | None) -> ReportScope:
    """What a report may cover. A coordinator asking for no branch gets theirs; a coordinator
    whose grants in a branch are all for towns gets that branch's figures in those towns only
    (entries of no town belong to the branch-wide coordinators).

    :raise Forbidden: not a coordinator, secretary-general or admin, or another branch.
    """
    if actor.sees_everything:
        return ReportScope(None if branch_id is None else frozenset({branch_id}))
    scope = actor.branches_as(Role.COORDINATOR)
    require(
        scope is None or bool(scope),
        "Only coordinators, the secretary-general and admins see hours reports.",
    )
    if branch_id is not None:
        require(scope is None or branch_id in scope, "You coordinate another branch.")
        branches: frozenset[int] | None = frozenset({branch_id})
    else:
        branches = None if scope is None else frozenset(scope)
    if branches is None:
        return ReportScope(None)  # a grant for every branch (coordinator grants name one)
    towns = []
    for branch in sorted(branches):
        grants = [
            grant
            for grant in actor.grants
            if grant.role == Role.COORDINATOR and grant.branch_id in (None, branch)
        ]
        if all(grant.town_id is not None for grant in grants):
            towns.append((branch, frozenset(g.town_id for g in grants if g.town_id is not None)))
    return ReportScope(branches, tuple(towns))


# ---------------------------------------------------------------------- shift swaps
# A swap request concerns two volunteers: the one who asked may cancel it, the one asked may
# accept or decline it, and both see it. The coordinators who see the plan (of its branch; of
# its town for a town-scoped grant, a plan of the whole branch being for branch-wide grants)
# and those who see everything may look at it but not answer for the volunteers.


def can_view_swap_request(
    actor: Actor, requester_id: int, target_id: int, branch_id: int, town_id: int | None
) -> bool:
    """`branch_id` and `town_id` are the plan's (`can_view_branch_plans`)."""
    return actor.member_id in (requester_id, target_id) or can_view_branch_plans(
        actor, branch_id, town_id
    )


def may_answer_swap_request(actor: Actor, target_id: int) -> bool:
    return actor.member_id == target_id


def may_cancel_swap_request(actor: Actor, requester_id: int) -> bool:
    return actor.member_id == requester_id
