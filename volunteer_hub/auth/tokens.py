"""JWT access tokens and rotating, revocable refresh tokens.

Each sign-in starts a refresh-token family. Refreshing marks the presented token used and issues
a new one in the same family. Presenting a used token again means it was copied: the whole
family is revoked, so whoever holds the newer token is signed out too.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from flask import Response, current_app, g
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token, decode_token
from sqlalchemy import CursorResult, select, update

from volunteer_hub.auth.policy import fetch_sign_in
from volunteer_hub.errors import Unauthorized, problem
from volunteer_hub.extensions import db
from volunteer_hub.models import Member, MemberStatus, RefreshToken
from volunteer_hub.models.types import utcnow


def issue_tokens(member: Member, family: str | None = None) -> dict[str, str]:
    """Create an access token and a refresh token (a new family unless one is given)."""
    family = family or uuid.uuid4().hex
    claims = {"fam": family, "tv": member.token_version}
    access = create_access_token(identity=str(member.id), additional_claims=claims)
    refresh = create_refresh_token(identity=str(member.id), additional_claims=claims)
    decoded = decode_token(refresh)
    lifetime: timedelta = current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    db.session.add(
        RefreshToken(
            jti=decoded["jti"],
            family=family,
            member_id=member.id,
            expires_at=utcnow() + lifetime,
        )
    )
    return {"access_token": access, "refresh_token": refresh}


def rotate_refresh_token(jwt_payload: dict[str, Any]) -> tuple[Member, dict[str, str]]:
    """Exchange a refresh token for new tokens.

    :raise Unauthorized: unknown, revoked, expired or reused token, or an inactive member.
    """
    # The UPDATE claims the token atomically: of two concurrent refreshes only one wins.
    claimed = cast(
        CursorResult[Any],
        db.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.jti == jwt_payload["jti"],
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=utcnow())
        ),
    ).rowcount
    if not claimed:
        token = db.session.get(RefreshToken, jwt_payload["jti"])
        if token is not None and token.used_at is not None:
            revoke_family(token.family)
            db.session.commit()
        raise Unauthorized("This refresh token is no longer valid; sign in again.")
    member = db.session.get(Member, int(jwt_payload["sub"]))
    if member is None or member.status != MemberStatus.ACTIVE:
        db.session.rollback()
        raise Unauthorized("This account cannot sign in.")
    tokens = issue_tokens(member, family=jwt_payload["fam"])
    db.session.commit()
    return member, tokens


def revoke_family(family: str) -> None:
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_all_for_member(member_id: int) -> None:
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.member_id == member_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _is_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
    """The blocklist check of an access token's family, in the same query that reads the
    caller (kept in `g.sign_in` for `policy.current_actor`, so a request asks once)."""
    if jwt_payload.get("type") == "refresh":
        # Refresh tokens are checked when rotated, where reuse must also revoke the family.
        return False
    family = jwt_payload.get("fam")
    try:
        member_id = int(jwt_payload["sub"])
    except (KeyError, TypeError, ValueError):
        revoked = db.session.scalar(
            select(RefreshToken.jti)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_not(None))
            .limit(1)
        )
        return revoked is not None
    sign_in = fetch_sign_in(member_id, family if isinstance(family, str) else None)
    g.sign_in = (jwt_payload.get("jti"), sign_in)
    return sign_in.revoked


def register_jwt_callbacks(jwt: JWTManager) -> None:
    def unauthorized(detail: str) -> Response:
        return problem(
            401,
            "Sign-in required",
            detail,
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )

    jwt.token_in_blocklist_loader(_is_revoked)

    @jwt.unauthorized_loader
    def _missing(reason: str) -> Response:
        return unauthorized(f"Send 'Authorization: Bearer <access_token>'. ({reason})")

    @jwt.invalid_token_loader
    def _invalid(reason: str) -> Response:
        return unauthorized(f"The token is not valid: {reason}.")

    @jwt.expired_token_loader
    def _expired(_header: dict[str, Any], payload: dict[str, Any]) -> Response:
        kind = "refresh" if payload.get("type") == "refresh" else "access"
        return unauthorized(f"The {kind} token has expired.")

    @jwt.revoked_token_loader
    def _revoked(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("This session has been signed out; sign in again.")

    @jwt.needs_fresh_token_loader
    def _stale(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("Sign in again to do this.")

    @jwt.user_lookup_error_loader
    def _no_user(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("This account cannot sign in.")
