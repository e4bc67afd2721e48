"""All models, imported here so that Alembic and the app see the whole schema."""

from volunteer_hub.models import attendance, incidents, notifications, plans  # noqa: F401
from volunteer_hub.models.audit import AuditLog
from volunteer_hub.models.federation import BRANCH_CODES, Branch, Organization, Squad, Town
from volunteer_hub.models.members import (
    Availability,
    Leave,
    Member,
    MemberBranch,
    MemberSkill,
    MemberStatus,
    RefreshToken,
    Role,
    RoleGrant,
    SignInCode,
    Skill,
)

__all__ = [
    "BRANCH_CODES",
    "AuditLog",
    "Availability",
    "Branch",
    "Leave",
    "Member",
    "MemberBranch",
    "MemberSkill",
    "MemberStatus",
    "Organization",
    "RefreshToken",
    "Role",
    "RoleGrant",
    "SignInCode",
    "Skill",
    "Squad",
    "Town",
]
