"""Sign-in, token refresh, sign-out, and the caller's own account."""

from __future__ import annotations

from typing import Any, ClassVar

from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import get_jwt, jwt_required
from marshmallow import Schema, fields, validate

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.auth.tokens import rotate_refresh_token
from volunteer_hub.extensions import db, limiter
from volunteer_hub.models import Member
from volunteer_hub.schemas.members import LoginArgs, MeSchema, TokensSchema
from volunteer_hub.services import accounts, sign_in_codes
from volunteer_hub.services.members_view import member_view

blp = Blueprint("auth", __name__, description="Accounts and tokens")


def _phone_key() -> str:
    """The phone as sign-in and sign-in codes look it up, so its spellings share one limit."""
    body = request.get_json(silent=True)
    phone = body.get("phone") if isinstance(body, dict) else None
    return f"login-phone:{accounts.normal_phone(str(phone))[:20] if phone else '-'}"


def _failed(response: Any) -> bool:
    """Only failed attempts count towards the throttle; a user who signs in often is fine."""
    return bool(response.status_code == 401)


def _phone_limit() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_PHONE"])


def _ip_limit() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_IP"])


class ActivateArgs(Schema):
    phone = fields.String(required=True, validate=validate.Length(1, 20))
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{8}$", error="The code is eight digits."),
        metadata={"description": "the one-time sign-in code an officer issued"},
    )
    password = fields.String(
        required=True,
        validate=validate.Length(1, 200),
        metadata={"description": "the new password, at least 8 characters"},
    )


def _throttled() -> list[Any]:
    """Failed attempts counted per phone and per IP (sign-in and sign-in codes alike)."""
    return [
        limiter.limit(_phone_limit, key_func=_phone_key, deduct_when=_failed),
        limiter.limit(_ip_limit, deduct_when=_failed),
    ]


def _signed_in(member: Member, tokens: dict[str, str]) -> dict[str, Any]:
    return {**tokens, "member": member_view(member, current_actor_for(member), with_roles=True)}


class PasswordArgs(Schema):
    current_password = fields.String(required=True, validate=validate.Length(1, 200))
    new_password = fields.String(required=True, validate=validate.Length(1, 200))


@blp.route("/auth/login")
class Login(MethodView):
    decorators: ClassVar[list[Any]] = _throttled()

    @blp.arguments(LoginArgs)
    @blp.response(200, TokensSchema)
    @blp.alt_response(401, description="Wrong phone or password (the same answer for both)")
    @blp.alt_response(429, description="Too many failed attempts; see Retry-After")
    def post(self, args: dict[str, str]) -> dict[str, Any]:
        """Sign in with phone and password."""
        return _signed_in(*accounts.login(db.session(), args["phone"], args["password"]))


@blp.route("/auth/activate")
class Activate(MethodView):
    decorators: ClassVar[list[Any]] = _throttled()

    @blp.arguments(ActivateArgs)
    @blp.response(200, TokensSchema)
    @blp.alt_response(401, description="Wrong phone or code, or the code expired or was used up")
    @blp.alt_response(429, description="Too many failed attempts; see Retry-After")
    def post(self, args: dict[str, str]) -> dict[str, Any]:
        """Set a password with a one-time sign-in code (first sign-in, or a forgotten
        password) and sign in; every earlier session of the member ends."""
        return _signed_in(
            *sign_in_codes.redeem(db.session(), args["phone"], args["code"], args["password"])
        )


def current_actor_for(member: Member) -> Any:
    from volunteer_hub.auth.policy import load_actor

    return load_actor(member.id)


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @jwt_required(refresh=True)
    @blp.response(200, TokensSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self) -> dict[str, Any]:
        """Exchange the refresh token (as Bearer) for new tokens; the old one stops working."""
        return _signed_in(*rotate_refresh_token(get_jwt()))


@blp.route("/auth/logout")
class Logout(MethodView):
    @jwt_required()
    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    def post(self) -> None:
        """Sign out: this sign-in's refresh token stops working."""
        current_actor()
        accounts.logout(db.session(), get_jwt()["fam"])


@blp.route("/me")
class Me(MethodView):
    @jwt_required()
    @blp.response(200, MeSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> dict[str, Any]:
        """The caller's own record with roles."""
        actor = current_actor()
        member = db.session.get_one(Member, actor.member_id)
        return member_view(member, actor, with_roles=True)


@blp.route("/me/password")
class Password(MethodView):
    @jwt_required()
    @blp.arguments(PasswordArgs)
    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    def put(self, args: dict[str, str]) -> None:
        """Change the password; every session of the member is signed out."""
        actor = current_actor()
        member = db.session.get_one(Member, actor.member_id)
        accounts.change_password(
            db.session(), member, args["current_password"], args["new_password"]
        )
