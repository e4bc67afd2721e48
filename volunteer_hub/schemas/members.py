"""Member views. Which fields are masked is decided by the policy and passed in context."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate


def no_control_characters(value: str) -> None:
    """:raise ValidationError: control characters or lone surrogates. PostgreSQL refuses NUL
    in text and no driver can encode a lone surrogate (JSON's "\\ud800") as UTF-8, so either
    would reach the database as a 500; none belongs in a name, a phone or a reason."""
    for char in value:
        code = ord(char)
        if (code < 32 and char not in "\t\n\r") or code == 127:
            raise ValidationError("Control characters are not allowed.")
        if 0xD800 <= code <= 0xDFFF:
            raise ValidationError("Not valid Unicode text (a lone surrogate).")


class RoleSchema(Schema):
    role = fields.String()
    branch = fields.String(allow_none=True)
    town = fields.Integer(allow_none=True)


class MemberSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    phone = fields.String(
        metadata={"description": "masked (138****1234) unless the caller may see it"}
    )
    id_number = fields.String(allow_none=True)
    town = fields.Integer(allow_none=True)
    branches = fields.List(fields.String())
    skills = fields.List(fields.String())
    is_core = fields.Boolean()
    status = fields.String()
    gender = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)
    joined_at = fields.DateTime()


class MeSchema(MemberSchema):
    roles = fields.List(fields.Nested(RoleSchema))
    home_lat = fields.Float(allow_none=True)
    home_lon = fields.Float(allow_none=True)


class LoginArgs(Schema):
    phone = fields.String(required=True, validate=[validate.Length(1, 20), no_control_characters])
    password = fields.String(required=True, validate=validate.Length(1, 200))


class SignInCodeSchema(Schema):
    code = fields.String(
        required=True, metadata={"description": "eight digits; shown once, pass it on"}
    )
    expires_at = fields.AwareDateTime(required=True)


class TokensSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    member = fields.Nested(MeSchema)
