"""The shared field types every feature's schemas use."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from volunteer_hub.schemas.common import Latitude, Longitude


class Position(Schema):
    lat = Latitude(required=True)
    lon = Longitude(required=True)


@pytest.mark.parametrize(
    "body",
    [
        {"lat": "29.8", "lon": 121.5},
        {"lat": True, "lon": 121.5},
        {"lat": float("nan"), "lon": 121.5},
        {"lat": float("inf"), "lon": 121.5},
        {"lat": 90.5, "lon": 121.5},
        {"lat": 29.8, "lon": -180.5},
        {"lat": None, "lon": 121.5},
    ],
)
def test_positions_must_be_finite_json_numbers_in_range(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Position().load(body)


def test_a_position_loads() -> None:
    assert Position().load({"lat": 29, "lon": 121.55}) == {"lat": 29.0, "lon": 121.55}
