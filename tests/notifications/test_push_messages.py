"""Rendering pushes from kind + params, and their firebase-admin form."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications import messages
from notifications.fcm import to_fcm_message
from notifications.messages import MissingParamsError, Push, UnknownKindError, build_push
from notifications.templates import TEMPLATES

SHIFT = {"post": "东湖花园南门", "date": "6月3日（周二）", "start": "06:00", "end": "21:00"}
PARAMS: dict[str, dict[str, str]] = {
    "assignment_published": {"assignment_id": "a-7", **SHIFT},
    "assignment_changed": {"assignment_id": "a-7", **SHIFT, "reason": "岗位调整。"},
    "assignment_cancelled": {"assignment_id": "a-7", **SHIFT},
    "shift_reminder": {"assignment_id": "a-7", **SHIFT},
    "no_show_notice": {"assignment_id": "a-7", "volunteer": "王芳", **SHIFT},
    "incident_offer": {
        "incident_id": "i-3",
        "offer_id": "o-9",
        "incident_type": "邻里纠纷调解",
        "location": "钟公庙街道",
        "summary": "两户因噪音争执",
        "respond_by": "14:35",
    },
    "offer_withdrawn": {
        "incident_id": "i-3",
        "offer_id": "o-9",
        "incident_type": "邻里纠纷调解",
        "location": "钟公庙街道",
    },
    "incident_escalated": {
        "incident_id": "i-3",
        "incident_type": "邻里纠纷调解",
        "location": "钟公庙街道",
        "minutes": "10",
        "offers": "6",
    },
    "announcement": {
        "announcement_id": "n-1",
        "title": "台风预警",
        "body": "请各分队做好防汛准备。",
    },
    "slot_offer": {"offer_id": "o-2", **SHIFT},
    "swap_request": {"swap_request_id": "s-1", "requester": "李强", **SHIFT},
    "swap_decided": {"swap_request_id": "s-1", "outcome": "已通过", **SHIFT},
}


def test_every_kind_has_a_sample() -> None:
    assert sorted(PARAMS) == messages.kinds()


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_every_kind_renders_chinese_with_string_data_and_message_id(kind: str) -> None:
    push = build_push(kind, PARAMS[kind], token="tok", message_id="m-1")

    assert push.kind == kind
    assert any("\u4e00" <= char <= "\u9fff" for char in push.title + push.body)
    assert "{" not in push.title + push.body
    assert push.data["message_id"] == "m-1"
    assert push.data["kind"] == kind
    assert all(isinstance(value, str) for value in push.data.values())
    assert 0 < push.ttl_seconds <= 28 * 24 * 3600


def test_registry_and_named_builder_agree() -> None:
    named = messages.assignment_published(
        token="tok", message_id="m-1", assignment_id="a-7", **SHIFT
    )
    assert named == build_push(
        "assignment_published", PARAMS["assignment_published"], token="tok", message_id="m-1"
    )
    assert named.title == "新的排班：东湖花园南门 6月3日（周二） 06:00-21:00"


def test_reminders_collapse_per_assignment() -> None:
    first = messages.shift_reminder(token="t", message_id="m-1", assignment_id="a-1", **SHIFT)
    again = messages.shift_reminder(token="t", message_id="m-2", assignment_id="a-1", **SHIFT)
    other = messages.shift_reminder(token="t", message_id="m-3", assignment_id="a-2", **SHIFT)

    assert first.collapse_key == again.collapse_key == "reminder-a-1"
    assert other.collapse_key == "reminder-a-2"


def test_incident_offer_is_urgent_and_short_lived_and_its_withdrawal_replaces_it() -> None:
    offer = build_push("incident_offer", PARAMS["incident_offer"], token="t", message_id="m")
    withdrawn = build_push("offer_withdrawn", PARAMS["offer_withdrawn"], token="t", message_id="n")

    assert offer.android_priority == "high"
    assert offer.ttl_seconds <= 600
    assert offer.data["offer_id"] == "o-9"
    assert offer.collapse_key == withdrawn.collapse_key == "offer-o-9"


def test_free_text_stays_out_of_the_data_payload() -> None:
    push = build_push("announcement", PARAMS["announcement"], token="t", message_id="m")
    assert set(push.data) == {"announcement_id", "kind", "message_id"}
    assert push.title == "台风预警"


def test_long_announcement_body_is_clipped() -> None:
    params = {**PARAMS["announcement"], "body": "防汛" * 1000}
    push = build_push("announcement", params, token="t", message_id="m")
    assert len(push.body) == messages.MAX_BODY_CHARS
    assert push.body.endswith("…")


def test_optional_reason_may_be_left_out() -> None:
    params = {k: v for k, v in PARAMS["assignment_cancelled"].items() if k != "reason"}
    push = build_push("assignment_cancelled", params, token="t", message_id="m")
    assert push.body.endswith("无需到岗。")


def test_unknown_kind_and_missing_params_are_refused() -> None:
    with pytest.raises(UnknownKindError):
        build_push("carrier_pigeon", {}, token="t", message_id="m")
    with pytest.raises(MissingParamsError, match="post"):
        build_push("shift_reminder", {"assignment_id": "a"}, token="t", message_id="m")
    with pytest.raises(ValueError, match="token"):
        build_push("shift_reminder", PARAMS["shift_reminder"], token="", message_id="m")


def test_shift_params_use_the_given_zone_and_mark_the_next_day() -> None:
    start, end = datetime(2026, 6, 2, 12, 0, tzinfo=UTC), datetime(2026, 6, 2, 22, 0, tzinfo=UTC)
    night = messages.shift_params(start, end, ZoneInfo("Asia/Shanghai"))
    assert night == {"date": "6月2日（周二）", "start": "20:00", "end": "次日06:00"}
    west = messages.shift_params(start, end, ZoneInfo("Asia/Urumqi"))
    assert west == {"date": "6月2日（周二）", "start": "18:00", "end": "次日04:00"}
    with pytest.raises(ValueError):
        messages.shift_params(
            datetime(2026, 6, 2, 12), datetime(2026, 6, 2, 22), ZoneInfo("Asia/Shanghai")
        )


@given(st.dictionaries(st.sampled_from(sorted(TEMPLATES["incident_offer"].required)), st.text()))
def test_rendering_any_text_gives_string_data_or_a_clear_error(params: dict[str, str]) -> None:
    try:
        push = build_push("incident_offer", params, token="t", message_id="m")
    except MissingParamsError as error:
        assert "missing" in str(error)
    else:
        assert all(isinstance(value, str) for value in push.data.values())
        assert len(push.title) <= messages.MAX_TITLE_CHARS


def _encoded(push: Push) -> dict[str, object]:
    from firebase_admin import messaging

    encoded: dict[str, object] = messaging._MessagingService.encode_message(
        to_fcm_message(push, now=1_000_000)
    )
    return encoded


def test_fcm_message_carries_android_and_apns_settings() -> None:
    reminder = build_push("shift_reminder", PARAMS["shift_reminder"], token="tok", message_id="m")
    encoded = _encoded(reminder)

    assert encoded["token"] == "tok"
    assert encoded["android"] == {
        "priority": "high",
        "ttl": "3600s",
        "collapse_key": "reminder-a-7",
    }
    assert encoded["apns"] == {
        "headers": {
            "apns-priority": "10",
            "apns-push-type": "alert",
            "apns-expiration": str(1_000_000 + 3600),
            "apns-collapse-id": "reminder-a-7",
        },
        "payload": {"aps": {"sound": "default"}},
    }
    assert encoded["notification"] == {"title": reminder.title, "body": reminder.body}


def test_normal_priority_maps_to_apns_priority_5() -> None:
    push = build_push("announcement", PARAMS["announcement"], token="tok", message_id="m")
    apns = _encoded(push)["apns"]
    assert isinstance(apns, dict)
    assert apns["headers"]["apns-priority"] == "5"
    assert "apns-collapse-id" not in apns["headers"]
