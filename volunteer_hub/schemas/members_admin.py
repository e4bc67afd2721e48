"""Schemas for managing members (list, create, change, suspend, roles) and for the caller's
own availability and leave. Shape only: rules that need the database live in services."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from volunteer_hub.models import BRANCH_CODES, MemberStatus, Role
from volunteer_hub.schemas.common import (
    MAX_ID,
    AwareDateTime,
    Id,
    Latitude,
    Longitude,
    PageArgs,
    Reason,
    StrictSchema,
    page_schema,
)
from volunteer_hub.schemas.members import MemberSchema, no_control_characters

# [0-9] and \Z, not \d and $: \d also matches other scripts' digits, $ a trailing newline.
PHONE_PATTERN = r"^1[3-9][0-9]{9}\Z"
TIME_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z"
GENDERS = ("male", "female")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_check_char(first17: str) -> str:
    """The GB 11643 check character of an 18-character resident identity number."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def validate_id_number(value: str) -> None:
    """:raise ValidationError: not 17 digits, a plausible birth date and the right check char."""
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        raise ValidationError("18 characters: 17 digits and a digit or X.")
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    if not (1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31):
        raise ValidationError("The birth date inside the number is not valid.")
    if id_number_check_char(value[:17]) != value[17]:
        raise ValidationError("The check character does not match.")


def Text(minimum: int, maximum: int, **kwargs: Any) -> fields.String:
    """A string of bounded length without control characters."""
    return fields.String(
        validate=[validate.Length(minimum, maximum), no_control_characters], **kwargs
    )


def _code(choices: tuple[str, ...] | None = None, **kwargs: Any) -> fields.String:
    checks: list[Any] = [validate.Length(1, 32), no_control_characters]
    if choices:
        checks.append(validate.OneOf(choices))
    return fields.String(validate=checks, **kwargs)


# ---------------------------------------------------------------------- members


class MemberListArgs(PageArgs):
    branch = _code(BRANCH_CODES)
    # Not Id(): query strings are text, so a strict integer would refuse every value.
    town = fields.Integer(validate=validate.Range(1, MAX_ID))
    skill = _code()
    q = Text(
        1,
        64,
        metadata={"description": "a fragment of the name or of the phone number"},
    )
    status = fields.String(validate=validate.OneOf([s.value for s in MemberStatus]))


class SkillInput(StrictSchema):
    code = _code(required=True)
    expires_on = fields.Date(allow_none=True, load_default=None)


class MemberWriteBase(StrictSchema):
    name = Text(1, 64)
    phone = fields.String(validate=validate.Regexp(PHONE_PATTERN, error="A mainland mobile."))
    id_number = fields.String(allow_none=True, validate=validate_id_number)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birth_year = fields.Integer(allow_none=True, strict=True, validate=validate.Range(1900, 2100))
    town = Id(allow_none=True)
    home_lat = Latitude(allow_none=True)
    home_lon = Longitude(allow_none=True)
    branches = fields.List(_code(BRANCH_CODES), validate=validate.Length(1, len(BRANCH_CODES)))
    skills = fields.List(fields.Nested(SkillInput), validate=validate.Length(0, 20))
    is_core = fields.Boolean()
    organization = Id(allow_none=True)


class MemberCreateArgs(MemberWriteBase):
    name = Text(1, 64, required=True)
    phone = fields.String(
        required=True, validate=validate.Regexp(PHONE_PATTERN, error="A mainland mobile.")
    )
    branches = fields.List(
        _code(BRANCH_CODES), required=True, validate=validate.Length(1, len(BRANCH_CODES))
    )
    password = fields.String(
        validate=validate.Length(8, 200),
        metadata={"description": "optional; without it the member must be activated"},
    )


class MemberPatchArgs(MemberWriteBase):
    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")


class MemberReasonArgs(StrictSchema):
    reason = Reason(required=True)


class RoleGrantArgs(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    branch = _code(BRANCH_CODES, allow_none=True)
    town = Id(allow_none=True)


class RoleGrantSchema(Schema):
    id = fields.Integer()
    role = fields.String()
    branch = fields.String(allow_none=True)
    town = fields.Integer(allow_none=True)
    granted_at = fields.DateTime(allow_none=True)


class MemberDetailSchema(MemberSchema):
    """A member as their managers see them: roles with grant ids, home, organisation."""

    roles = fields.List(fields.Nested(RoleGrantSchema))
    home_lat = fields.Float(allow_none=True)
    home_lon = fields.Float(allow_none=True)
    organization = fields.Integer(allow_none=True)


MemberPageSchema = page_schema(MemberSchema, "MemberPage")


# ---------------------------------------------------------------------- availability


class WindowSchema(StrictSchema):
    weekday = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(0, 6),
        metadata={"description": "0 = Monday … 6 = Sunday"},
    )
    start = fields.String(
        required=True, validate=validate.Regexp(TIME_PATTERN, error="HH:MM, 00:00 to 24:00.")
    )
    end = fields.String(
        required=True, validate=validate.Regexp(TIME_PATTERN, error="HH:MM, 00:00 to 24:00.")
    )


class AvailabilityArgs(StrictSchema):
    windows = fields.List(
        fields.Nested(WindowSchema), required=True, validate=validate.Length(0, 200)
    )


class AvailabilitySchema(Schema):
    windows = fields.List(fields.Nested(WindowSchema))
    timezone = fields.String(metadata={"description": "the zone the windows are in"})


# ---------------------------------------------------------------------- leave


class LeaveArgs(StrictSchema):
    starts_at = AwareDateTime(required=True)
    ends_at = AwareDateTime(required=True)
    reason = Text(0, 200, allow_none=True)


class LeaveSchema(Schema):
    id = fields.Integer()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LeaveListArgs(PageArgs):
    include_past = fields.Boolean(
        load_default=False, metadata={"description": "also leaves that have ended"}
    )


LeavePageSchema = page_schema(LeaveSchema, "LeavePage")
