"""Members: list and find, add, change, suspend and reactivate, grant and withdraw roles."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import Actor, can_see_private, current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models import Member, MemberStatus, Role, RoleGrant
from volunteer_hub.schemas.members import SignInCodeSchema
from volunteer_hub.schemas.members_admin import (
    MemberCreateArgs,
    MemberDetailSchema,
    MemberListArgs,
    MemberPageSchema,
    MemberPatchArgs,
    MemberReasonArgs,
    RoleGrantArgs,
    RoleGrantSchema,
)
from volunteer_hub.services import members as service
from volunteer_hub.services import sign_in_codes
from volunteer_hub.services.members_view import member_view

blp = Blueprint("members", __name__, description="Members of the federation")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# Bounded like the id columns, so a huge id is a 404 rather than an overflow in the driver.
ID = "int(min=1, max=2147483647)"


def grant_view(grant: RoleGrant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "role": grant.role.value,
        "branch": grant.branch.code if grant.branch else None,
        "town": grant.town_id,
        "granted_at": grant.granted_at,
    }


def member_detail(member: Member, actor: Actor) -> dict[str, Any]:
    """The member with roles; home and organisation only for those who see private data."""
    view = member_view(member, actor)
    private = can_see_private(actor, member)
    view["roles"] = [grant_view(grant) for grant in member.roles]
    view["home_lat"] = member.home_lat if private else None
    view["home_lon"] = member.home_lon if private else None
    view["organization"] = member.organization_id
    return view


@blp.route("/members")
class Members(MethodView):
    @jwt_required()
    @blp.arguments(MemberListArgs, location="query")
    @blp.response(200, MemberPageSchema)
    @blp.alt_response(403, description="Not a coordinator of the branch asked for")
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Members the caller may list: a coordinator's own branches; everyone for the
        secretary-general and admins."""
        actor = current_actor()
        result = service.list_members(db.session(), actor, **args)
        result["items"] = [member_view(member, actor) for member in result["items"]]
        return result

    @jwt_required()
    @blp.arguments(MemberCreateArgs)
    @blp.response(201, MemberDetailSchema)
    @blp.alt_response(403, description="Not a coordinator of every branch given, nor an admin")
    @blp.alt_response(409, description="The phone number is already registered")
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Add a member; without a password the account must be activated before sign-in."""
        actor = current_actor()
        member = service.create_member(db.session(), actor, args)
        return member_detail(member, actor)


@blp.route(f"/members/<{ID}:member_id>")
class MemberItem(MethodView):
    @jwt_required()
    @blp.response(200, MemberDetailSchema)
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.doc(security=BEARER)
    def get(self, member_id: int) -> dict[str, Any]:
        """One member: for the member, their coordinators and squad leader, the SG, admins."""
        actor = current_actor()
        return member_detail(service.get_member(db.session(), actor, member_id), actor)

    @jwt_required()
    @blp.arguments(MemberPatchArgs)
    @blp.response(200, MemberDetailSchema)
    @blp.alt_response(403, description="Not a coordinator of the member's branches, nor an admin")
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.alt_response(409, description="The new phone number belongs to another member")
    @blp.doc(security=BEARER)
    def patch(self, args: dict[str, Any], member_id: int) -> dict[str, Any]:
        """Change a member's record (audited with before and after)."""
        actor = current_actor()
        member = service.update_member(db.session(), actor, member_id, args)
        return member_detail(member, actor)


def _status_change(member_id: int, status: MemberStatus, reason: str) -> dict[str, Any]:
    actor = current_actor()
    member = service.set_status(db.session(), actor, member_id, status, reason)
    return member_detail(member, actor)


@blp.route(f"/members/<{ID}:member_id>/suspend")
class Suspend(MethodView):
    @jwt_required()
    @blp.arguments(MemberReasonArgs)
    @blp.response(200, MemberDetailSchema)
    @blp.alt_response(403, description="May not manage this member, or it is the caller")
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.alt_response(409, description="The member is not active")
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, str], member_id: int) -> dict[str, Any]:
        """Suspend a member with a reason; their tokens stop working (audited)."""
        return _status_change(member_id, MemberStatus.SUSPENDED, args["reason"])


@blp.route(f"/members/<{ID}:member_id>/sign-in-code")
class IssueSignInCode(MethodView):
    @jwt_required()
    @blp.response(201, SignInCodeSchema)
    @blp.alt_response(403, description="May not manage this member, or it is the caller")
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.alt_response(409, description="The member is suspended")
    @blp.doc(security=BEARER)
    def post(self, member_id: int) -> dict[str, Any]:
        """Issue a one-time sign-in code for the member to set their password with at
        POST /auth/activate (replaces any earlier code; audited without the code)."""
        code, expires = sign_in_codes.issue(db.session(), current_actor(), member_id)
        return {"code": code, "expires_at": expires}


@blp.route(f"/members/<{ID}:member_id>/reactivate")
class Reactivate(MethodView):
    @jwt_required()
    @blp.arguments(MemberReasonArgs)
    @blp.response(200, MemberDetailSchema)
    @blp.alt_response(403, description="May not manage this member, or it is the caller")
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.alt_response(409, description="The member is not suspended")
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, str], member_id: int) -> dict[str, Any]:
        """Reactivate a suspended member with a reason (audited)."""
        return _status_change(member_id, MemberStatus.ACTIVE, args["reason"])


@blp.route(f"/members/<{ID}:member_id>/roles")
class Roles(MethodView):
    @jwt_required()
    @blp.arguments(RoleGrantArgs)
    @blp.response(201, RoleGrantSchema)
    @blp.alt_response(403, description="The caller may not grant this role")
    @blp.alt_response(404, description="No such member, or one the caller may not see")
    @blp.alt_response(409, description="The member already holds this role")
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], member_id: int) -> dict[str, Any]:
        """Grant a role, scoped to a branch and/or town as the role needs (audited)."""
        actor = current_actor()
        grant = service.grant_role(
            db.session(),
            actor,
            member_id,
            Role(args["role"]),
            branch=args.get("branch"),
            town=args.get("town"),
        )
        return grant_view(grant)


@blp.route(f"/members/<{ID}:member_id>/roles/<{ID}:grant_id>")
class RoleItem(MethodView):
    @jwt_required()
    @blp.response(204)
    @blp.alt_response(403, description="The caller may not withdraw this role")
    @blp.alt_response(404, description="No such member or grant, or one the caller may not see")
    @blp.doc(security=BEARER)
    def delete(self, member_id: int, grant_id: int) -> None:
        """Withdraw a role grant (audited)."""
        service.revoke_role(db.session(), current_actor(), member_id, grant_id)
