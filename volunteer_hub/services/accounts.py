"""Signing in and out."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from volunteer_hub.auth.passwords import hash_password, needs_rehash, verify_password
from volunteer_hub.auth.tokens import issue_tokens, revoke_all_for_member, revoke_family
from volunteer_hub.errors import Unauthorized, ValidationFailed
from volunteer_hub.models import Member, MemberStatus

WRONG_LOGIN = "The phone number or password is wrong."


def normal_phone(phone: str) -> str:
    """The phone as sign-in looks it up (blanks around it dropped); the per-phone throttle
    keys on the same, so that " 138..." is not a fresh allowance of guesses for "138..."."""
    return phone.strip()


def login(session: Session, phone: str, password: str) -> tuple[Member, dict[str, str]]:
    """Check the password and open a new refresh-token family.

    :raise Unauthorized: the same answer for an unknown phone and a wrong password.
    """
    member = session.scalar(select(Member).where(Member.phone == normal_phone(phone)))
    if not verify_password(member.password_hash if member else None, password) or member is None:
        raise Unauthorized(WRONG_LOGIN)
    if member.status != MemberStatus.ACTIVE:
        raise Unauthorized(WRONG_LOGIN)
    if member.password_hash and needs_rehash(member.password_hash):
        member.password_hash = hash_password(password)
    tokens = issue_tokens(member)
    session.commit()
    return member, tokens


def logout(session: Session, family: str) -> None:
    revoke_family(family)
    session.commit()


def change_password(session: Session, member: Member, current: str, new: str) -> None:
    """:raise ValidationFailed: the current password is wrong or the new one too weak."""
    if not verify_password(member.password_hash, current):
        raise ValidationFailed(
            "The current password is wrong.", errors={"current_password": ["Wrong password."]}
        )
    if len(new) < 8 or new == current:
        raise ValidationFailed(
            "Choose a new password of at least 8 characters.",
            errors={"new_password": ["At least 8 characters, different from the current one."]},
        )
    member.password_hash = hash_password(new)
    member.token_version += 1
    revoke_all_for_member(member.id)
    session.commit()
