"""Turn a Member into what a given caller may see of it."""

from __future__ import annotations

from typing import Any

from volunteer_hub.auth.policy import Actor, can_see_private, mask_id_number, mask_phone
from volunteer_hub.models import Member
from volunteer_hub.models.types import utcnow
from volunteer_hub.services.hours import local_day


def member_view(member: Member, actor: Actor, *, with_roles: bool = False) -> dict[str, Any]:
    """The Member of API.md; phone and identity number masked unless the policy allows."""
    private = can_see_private(actor, member)
    today = local_day(utcnow())  # a certificate's last day is a day of the federation
    view: dict[str, Any] = {
        "id": member.id,
        "name": member.name,
        "phone": member.phone if private else mask_phone(member.phone),
        "id_number": member.id_number if private else mask_id_number(member.id_number),
        "town": member.town_id,
        "branches": [branch.code for branch in member.branches],
        "skills": sorted(
            s.skill.code for s in member.skills if s.expires_on is None or s.expires_on >= today
        ),
        "is_core": member.is_core,
        "status": member.status.value,
        "gender": member.gender,
        "birth_year": member.birth_year,
        "joined_at": member.joined_at,
    }
    if with_roles:
        view["roles"] = [
            {
                "role": grant.role.value,
                "branch": grant.branch.code if grant.branch else None,
                "town": grant.town_id,
            }
            for grant in member.roles
        ]
        view["home_lat"] = member.home_lat
        view["home_lon"] = member.home_lon
    return view
