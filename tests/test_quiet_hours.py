"""Quiet hours: when a push about a shift may be sent."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from volunteer_hub.services.quiet_hours import QuietHours, held

ZONE = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours(time(22), time(7), ZONE)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZONE)


def test_an_overnight_window_ends_the_next_morning_or_the_same_morning() -> None:
    assert NIGHT.ends_after(at(3, 23)) == at(4, 7)
    assert NIGHT.ends_after(at(3, 22)) == at(4, 7)  # the start is inside
    assert NIGHT.ends_after(at(4, 2, 30)) == at(4, 7)
    assert NIGHT.ends_after(at(4, 7)) is None  # the end is outside
    assert NIGHT.ends_after(at(4, 12)) is None
    # The moment may come in any zone: it is judged on the federation's clock.
    assert NIGHT.ends_after(at(3, 23).astimezone(ZoneInfo("UTC"))) == at(4, 7)


def test_a_window_within_one_day() -> None:
    lunch = QuietHours(time(12), time(14), ZONE)
    assert lunch.ends_after(at(3, 12, 30)) == at(3, 14)
    assert lunch.ends_after(at(3, 11, 59)) is None
    assert lunch.ends_after(at(3, 23)) is None


def test_a_push_waits_unless_its_shift_is_soon_after_the_quiet_hours() -> None:
    # Published at 23:00 for a patrol two days later: told at 07:00.
    assert NIGHT.release(at(3, 23), at(5, 19)) == at(4, 7)
    # For the 06:00 patrol, or one starting before 07:00 + 2 h: told now.
    assert NIGHT.release(at(3, 23), at(4, 6)) == at(3, 23)
    assert NIGHT.release(at(3, 23), at(4, 8, 59)) == at(3, 23)
    assert NIGHT.release(at(3, 23), at(4, 9)) == at(4, 7)
    # In the day nothing waits.
    assert NIGHT.release(at(3, 15), at(9, 9)) == at(3, 15)
    # A reminder due at 02:00 for tomorrow's 02:00 patrol comes at 07:00; the 2-hour one
    # for a 04:00 start comes at 02:00.
    assert NIGHT.release(at(3, 2), at(4, 2)) == at(3, 7)
    assert NIGHT.release(at(4, 2), at(4, 4)) == at(4, 2)


def test_settings_are_read_and_checked() -> None:
    read = QuietHours.from_config({"PUSH_QUIET_HOURS": "21:30-06:45", "PUSH_QUIET_MARGIN_H": 1})
    assert read is not None
    assert (read.start, read.end, read.margin) == (time(21, 30), time(6, 45), timedelta(hours=1))
    default = QuietHours.from_config({})
    assert default is not None and (default.start, default.end) == (time(22), time(7))
    assert QuietHours.from_config({"PUSH_QUIET_HOURS": "off"}) is None
    assert QuietHours.from_config({"PUSH_QUIET_HOURS": ""}) is None
    for bad in ("22-7", "22:00-24:00", "22:00-22:00", "22:00 - 07:00", "nightly"):
        with pytest.raises(ValueError, match="quiet hours"):
            QuietHours.from_config({"PUSH_QUIET_HOURS": bad})
    with pytest.raises(ValueError, match="margin"):
        QuietHours.from_config({"PUSH_QUIET_MARGIN_H": -1})


def test_held_gives_the_push_its_send_and_show_times() -> None:
    assert held(None, at(3, 23), at(5, 19)) == (None, None)
    assert held(NIGHT, at(3, 23), at(5, 19)) == (at(4, 7), at(3, 23))  # shown at once
    assert held(NIGHT, at(3, 23), at(4, 6)) == (None, None)
    assert held(NIGHT, at(3, 15), at(5, 19)) == (None, None)
