"""Quiet hours: a push that can wait is not sent at night.

A coordinator who publishes next week's plan at 23:00 should not wake a thousand volunteers.
Pushes about a shift (published, changed, cancelled, its reminders) that fall due inside the
federation's quiet hours (`PUSH_QUIET_HOURS`, local time, default 22:00-07:00) wait until the
quiet hours end, unless the shift starts before they end plus `PUSH_QUIET_MARGIN_H` (default
2 h): someone on the 06:00 patrol must hear about it now. The in-app inbox shows a held item at
once (only its push waits). Incident call-outs and a squad leader's no-show notices are never
held: they are about now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from volunteer_hub.services.hours import zone_of

DEFAULT_WINDOW = "22:00-07:00"
DEFAULT_MARGIN_H = 2.0
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local start and end of the quiet hours (an end before the start runs past midnight)."""

    start: time
    end: time
    zone: ZoneInfo
    margin: timedelta = timedelta(hours=DEFAULT_MARGIN_H)

    @classmethod
    def parse(
        cls, window: str, zone: ZoneInfo, margin: timedelta = timedelta(hours=DEFAULT_MARGIN_H)
    ) -> QuietHours | None:
        """`"22:00-07:00"`; None for `""` or `"off"` (no quiet hours).

        :raise ValueError: any other text, or a start equal to the end.
        """
        text = window.strip().lower()
        if text in ("", "off"):
            return None
        match = _WINDOW.fullmatch(text)
        if match is None:
            raise ValueError(f"quiet hours {window!r}: expected HH:MM-HH:MM, e.g. 22:00-07:00")
        start = time(int(match[1]), int(match[2]))
        end = time(int(match[3]), int(match[4]))
        if start == end:
            raise ValueError(f"quiet hours {window!r}: the start equals the end")
        if margin < timedelta(0):
            raise ValueError("the quiet-hours margin cannot be negative")
        return cls(start, end, zone, margin)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QuietHours | None:
        zone = zone_of(config)
        margin = timedelta(hours=float(config.get("PUSH_QUIET_MARGIN_H", DEFAULT_MARGIN_H)))
        return cls.parse(str(config.get("PUSH_QUIET_HOURS", DEFAULT_WINDOW)), zone, margin)

    def ends_after(self, moment: datetime) -> datetime | None:
        """When the quiet hours that `moment` falls in end (aware), or None outside them."""
        local = moment.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        overnight = self.end < self.start
        inside = (
            (clock >= self.start or clock < self.end)
            if overnight
            else self.start <= clock < self.end
        )
        if not inside:
            return None
        day = local.date()
        if overnight and clock >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end, self.zone)

    def release(self, due: datetime, shift_starts: datetime) -> datetime:
        """When a push about a shift starting at `shift_starts`, due at `due`, is sent: `due`,
        or the end of the quiet hours it falls in when the shift starts late enough after."""
        ends = self.ends_after(due)
        if ends is None or shift_starts < ends + self.margin:
            return due
        return ends


def held(
    quiet: QuietHours | None, now: datetime, shift_starts: datetime
) -> tuple[datetime | None, datetime | None]:
    """`(deliver_after, visible_at)` for a push about a shift written at `now`: both None to
    send it at once, or the end of the quiet hours and `now` (its inbox item shows at once)."""
    due = now if quiet is None else quiet.release(now, shift_starts)
    return (due, now) if due > now else (None, None)
