"""A synthetic but plausible patrol week for one district's federation, at any size.

The district has 24 towns on a jittered grid around 29.8 N, 121.55 E, 4-8 km apart. Each town
has posts in proportion to its volunteers; posts run morning (08-12), afternoon (14-18) and
night (19-23) patrols in Asia/Shanghai with 2-4 people, nights led by a leader and some patrols
needing first aid. Volunteers live near their town, say which days they can give, work on
weekdays in the daytime when employed, and have weekly caps. Demand is sized so that about
nine in ten slots or a little more can be filled at all: coverage is hard but not trivial.

The same seed always gives the same problem (one `random.Random`, no other source).
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduling.problem import (
    Limits,
    Location,
    Problem,
    Request,
    Rules,
    Shift,
    Volunteer,
    Weights,
    Window,
)

TIMEZONE = "Asia/Shanghai"
CENTRE = Location(29.80, 121.55)
TOWN_ROWS, TOWN_COLS = 4, 6
TOWN_SPACING_KM = 6.0
KM_PER_DEGREE_LAT = 111.19
# (name, start hour, end hour, kind)
PATROLS = (("am", 8, 12, "day"), ("pm", 14, 18, "day"), ("night", 19, 23, "night"))
# How often a post runs each patrol on a given day.
PATROL_SHARE = {"am": 0.55, "pm": 0.55, "night": 0.9}
SKILL_SHARES = {"first_aid": 0.25, "leader": 0.10, "driving": 0.20, "mediation": 0.08}
VOLUNTEERS_PER_POST = 36
EMPLOYED_SHARE = 0.55
LEAVE_SHARE = 0.03
REQUEST_SHARE = 0.05


def _offset(origin: Location, north_km: float, east_km: float) -> Location:
    lat = origin.lat + north_km / KM_PER_DEGREE_LAT
    lon = origin.lon + east_km / (KM_PER_DEGREE_LAT * math.cos(math.radians(origin.lat)))
    return Location(round(lat, 6), round(lon, 6))


def _towns(rng: random.Random) -> list[tuple[str, Location, float]]:
    """(name, centre, relative size) for each town."""
    towns: list[tuple[str, Location, float]] = []
    for row in range(TOWN_ROWS):
        for col in range(TOWN_COLS):
            north = (row - (TOWN_ROWS - 1) / 2) * TOWN_SPACING_KM + rng.uniform(-0.8, 0.8)
            # Alternate rows are shifted half a step, as on a hex grid, so neighbours are
            # closer to even distances.
            east = (col - (TOWN_COLS - 1) / 2 + (row % 2) / 2) * TOWN_SPACING_KM
            east += rng.uniform(-0.8, 0.8)
            size = rng.lognormvariate(0, 0.5)
            towns.append((f"t{len(towns) + 1:02d}", _offset(CENTRE, north, east), size))
    return towns


def _spread(count: int, weights: list[float]) -> list[int]:
    """Split `count` in proportion to `weights`, largest remainders first (exact total)."""
    total = sum(weights)
    shares = [count * w / total for w in weights]
    counts = [math.floor(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: counts[i] - shares[i])
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    return counts


class _Week:
    def __init__(self, start: date, days: int) -> None:
        self.tz = ZoneInfo(TIMEZONE)
        self.dates = [start + timedelta(days=d) for d in range(days)]

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)

    def whole_day(self, day: date) -> Window:
        return Window(self.at(day, 0), self.at(day, 0) + timedelta(days=1))


def _volunteer_windows(rng: random.Random, week: _Week) -> tuple[Window, ...]:
    """Days not given, the part of the day not given, weekday working hours for the employed,
    and leave for a few."""
    windows: list[Window] = []
    # Volunteers give one to three days a week, and many only daytime or only evenings; the
    # rest is unavailable. Narrow availability also keeps the eligible pairs near-linear in
    # the number of volunteers (each person reaches every post within 8 km).
    given_share = rng.uniform(0.15, 0.45)
    part = rng.choices(("day", "night", "both"), weights=(0.4, 0.4, 0.2))[0]
    employed = rng.random() < EMPLOYED_SHARE
    for day in week.dates:
        if rng.random() > given_share:
            windows.append(week.whole_day(day))
            continue
        if part == "night" or (employed and day.weekday() < 5):
            windows.append(Window(week.at(day, 7, 30), week.at(day, 18, 30)))
        if part == "day":
            windows.append(Window(week.at(day, 18, 30), week.at(day, 23, 30)))
    if rng.random() < LEAVE_SHARE:
        first = rng.randrange(len(week.dates))
        length = rng.randint(2, 5)
        end = min(first + length, len(week.dates))
        windows.append(
            Window(week.at(week.dates[first], 0), week.at(week.dates[end - 1], 0) + timedelta(1))
        )
    return tuple(windows)


def _skills(rng: random.Random) -> frozenset[str]:
    return frozenset(skill for skill, share in SKILL_SHARES.items() if rng.random() < share)


def _limits(rng: random.Random, days: int) -> Limits:
    weeks = max(1, round(days / 7))
    return Limits(
        max_minutes_per_week=rng.choice((480, 600, 720, 840, 960)),
        max_shifts=rng.randint(3, 5) * weeks,
        max_shifts_by_kind={"night": 2 * weeks} if rng.random() < 0.3 else {},
    )


def _post_shifts(
    rng: random.Random, week: _Week, post_id: str, location: Location, intensity: float
) -> list[Shift]:
    shifts = []
    for day in week.dates:
        for name, start_hour, end_hour, kind in PATROLS:
            if rng.random() > PATROL_SHARE[name] * intensity:
                continue
            skills: dict[str, int] = {}
            if kind == "night":
                skills["leader"] = 1
            if rng.random() < 0.35:
                skills["first_aid"] = 1
            shifts.append(
                Shift(
                    id=f"{post_id}-{day:%m%d}-{name}",
                    start=week.at(day, start_hour),
                    end=week.at(day, end_hour),
                    kind=kind,
                    location=location,
                    required=rng.randint(2, 4),
                    skills=skills,
                )
            )
    return shifts


def generate_federation_week(
    volunteers: int, seed: int = 0, days: int = 7, start: date = date(2026, 12, 7)
) -> Problem:
    """A patrol plan problem for `volunteers` members over `days` days from `start`."""
    if volunteers < 1 or days < 1:
        raise ValueError("volunteers and days must be at least 1")
    rng = random.Random(seed)
    week = _Week(start, days)
    towns = _towns(rng)
    per_town = _spread(volunteers, [size for _, _, size in towns])

    people: list[tuple[Volunteer, str]] = []
    shifts: list[Shift] = []
    for (town, centre, _), count in zip(towns, per_town, strict=True):
        for _ in range(count):
            home = _offset(centre, rng.gauss(0, 1.0), rng.gauss(0, 1.0))
            volunteer = Volunteer(
                id=f"v{len(people) + 1:05d}",
                skills=_skills(rng),
                location=home,
                unavailable=_volunteer_windows(rng, week),
                limits=_limits(rng, days),
            )
            people.append((volunteer, town))
        posts = max(1, round(count / VOLUNTEERS_PER_POST))
        # A small town's single post runs fewer patrols, so demand stays proportional to
        # the town's volunteers at every size.
        intensity = min(1.0, count / (posts * VOLUNTEERS_PER_POST))
        for post in range(posts):
            location = _offset(centre, rng.gauss(0, 0.8), rng.gauss(0, 0.8))
            post_id = f"{town}p{post + 1:02d}"
            shifts.extend(_post_shifts(rng, week, post_id, location, intensity))

    demand_minutes = sum(s.minutes * s.required for s in shifts)
    fair_share = math.ceil(demand_minutes / max(1, volunteers) / 60) * 60
    shifts_by_town: dict[str, list[Shift]] = {}
    for shift in shifts:
        shifts_by_town.setdefault(shift.id[:3], []).append(shift)
    finished = []
    for volunteer, town in people:
        requests: tuple[Request, ...] = ()
        local = shifts_by_town.get(town)
        if local and rng.random() < REQUEST_SHARE:
            requests = (Request(rng.choice(local).id, True, 20),)
        finished.append(
            Volunteer(
                id=volunteer.id,
                skills=volunteer.skills,
                location=volunteer.location,
                unavailable=volunteer.unavailable,
                target_minutes=fair_share,
                limits=volunteer.limits,
                requests=requests,
            )
        )
    return Problem(
        timezone=TIMEZONE,
        horizon_start=start,
        horizon_days=days,
        volunteers=tuple(finished),
        shifts=tuple(shifts),
        rules=Rules(
            min_rest_minutes=8 * 60,
            one_shift_per_day=True,
            max_distance_km=8.0,
            weekend_days=(5, 6),
        ),
        weights=Weights(under=1000, over=0, skill_under=300, fairness=1, distance=5, change=50),
        meta={
            "generator": "generate_federation_week",
            "volunteers": volunteers,
            "seed": seed,
            "days": days,
            "towns": len(towns),
        },
    )
