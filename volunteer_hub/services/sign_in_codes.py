"""One-time sign-in codes: how a member added without a password (or who forgot theirs) gets
into the app. An officer who manages the member issues a code and passes it on (in person, by
phone, by SMS from their own phone); the member enters it with their phone number and a new
password, and is signed in. Every old session of theirs ends, as with a password change.

Codes are eight digits from `secrets`, kept only as an argon2 hash, valid for
`SIGN_IN_CODE_TTL_H` hours, and die after `SIGN_IN_CODE_MAX_ATTEMPTS` wrong tries (on top of
the per-phone and per-IP throttle of the endpoint), so guessing one is hopeless.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from volunteer_hub.auth.passwords import hash_password, verify_password
from volunteer_hub.auth.policy import (
    Actor,
)
from volunteer_hub.auth.tokens import issue_tokens, revoke_all_for_member
from volunteer_hub.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from volunteer_hub.models import Member, MemberStatus, SignInCode
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit
from volunteer_hub.services.accounts import normal_phone
from volunteer_hub.services.members import managed_member

DEFAULTS: dict[str, Any] = {"SIGN_IN_CODE_TTL_H": 72, "SIGN_IN_CODE_MAX_ATTEMPTS": 5}
WRONG_CODE = "The phone number or sign-in code is wrong, used up or expired."
MIN_PASSWORD = 8


def _setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


def issue(session: Session, actor: Actor, member_id: int) -> tuple[str, datetime]:
    """A new code for the member (replacing any earlier one) and when it expires; audited
    without the code.

    :raise NotFound: the actor may not see the member.
    :raise Forbidden: the actor may not manage the member, or asks for themself.
    :raise Conflict: the member is suspended.
    """
    member = managed_member(session, actor, member_id, "issues sign-in codes")
    if member.id == actor.member_id:
        raise Forbidden("Change your own password under /me/password.")
    if member.status != MemberStatus.ACTIVE:
        raise Conflict(f"The member is {member.status.value}; reactivate them first.")
    code = f"{secrets.randbelow(10**8):08d}"
    now = utcnow()
    expires = now + timedelta(hours=_setting("SIGN_IN_CODE_TTL_H"))
    session.execute(delete(SignInCode).where(SignInCode.member_id == member.id))
    session.add(
        SignInCode(
            member_id=member.id,
            code_hash=hash_password(code),
            issued_by=actor.member_id,
            created_at=now,
            expires_at=expires,
            failed_attempts=0,
        )
    )
    audit.record(
        session,
        actor.member_id,
        "member.sign_in_code",
        "member",
        member.id,
        after={"expires_at": expires.isoformat(), "had_password": member.password_hash is not None},
    )
    session.commit()
    return code, expires


def redeem(session: Session, phone: str, code: str, password: str) -> tuple[Member, dict[str, str]]:
    """Set the member's password with a valid code and sign them in; the code is used up and
    every earlier session ends.

    :raise ValidationFailed: the new password is too short (the code is kept).
    :raise Unauthorized: one answer for an unknown phone, a wrong, expired or used-up code and
        a suspended member.
    """
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            "Choose a password of at least 8 characters.",
            errors={"password": [f"At least {MIN_PASSWORD} characters."]},
        )
    member = session.scalar(select(Member).where(Member.phone == normal_phone(phone)))
    issued = (
        session.scalar(
            select(SignInCode).where(SignInCode.member_id == member.id).with_for_update()
        )
        if member is not None
        else None
    )
    usable = (
        issued is not None
        and issued.expires_at > utcnow()
        and issued.failed_attempts < _setting("SIGN_IN_CODE_MAX_ATTEMPTS")
    )
    # Always verify (against a dummy hash when there is no code), so timing tells nothing.
    matches = verify_password(issued.code_hash if usable and issued else None, code)
    if not usable or not matches or member is None or member.status != MemberStatus.ACTIVE:
        if usable and issued is not None and not matches:
            issued.failed_attempts += 1
            session.commit()
        else:
            session.rollback()
        raise Unauthorized(WRONG_CODE)
    assert issued is not None
    session.delete(issued)
    member.password_hash = hash_password(password)
    member.token_version += 1
    revoke_all_for_member(member.id)
    audit.record(session, member.id, "member.activate", "member", member.id)
    tokens = issue_tokens(member)
    session.commit()
    return member, tokens
