"""The hours rollup always equals the ledger: after random credits, corrections, awards and
reversals, every report read from the rollup equals the same report aggregated directly from
the ledger, and the rollup equals one rebuilt from scratch. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models.attendance import (
    HoursEntry,
    HoursKind,
    HoursRollup,
    hours_span,
    hours_span_member,
)
from volunteer_hub.services import hours, hours_rollup, reports

SH = ZoneInfo("Asia/Shanghai")
# Entries fall between 20 Nov 2025 and 10 Feb 2027: a year boundary, and months at both ends
# that a range only partly covers.
FIRST_DAY = date(2025, 11, 20)
SPAN_DAYS = (date(2027, 2, 10) - FIRST_DAY).days
# Entries and range ends cluster on a few days around month and year ends, so that the
# partial months at a range's edges have entries to add or subtract.
TIGHT_DAYS = [
    date(y, m, d)
    for y, m in ((2025, 11), (2025, 12), (2026, 1), (2026, 6), (2026, 12), (2027, 1))
    for d in (1, 2, 14, 16, 28)
] + [date(2025, 11, 30), date(2025, 12, 31), date(2026, 6, 30), date(2026, 12, 31)]
GROUPINGS = [
    ["branch"],
    ["town"],
    ["squad"],
    ["member"],
    ["month"],
    ["month", "branch"],
    ["branch", "month"],
    ["month", "town"],
    ["squad", "month"],
    ["branch", "town"],
    ["member", "branch"],
    ["town", "member"],
    ["month", "member"],
]


class World:
    def __init__(self, app: Flask, factory: Factory) -> None:
        self.app = app
        self.towns: list[int | None] = [factory.create_town("甲镇"), factory.create_town("乙镇")]
        self.towns.append(None)
        factory.create_squad("patrol", self.towns[0] or 0)
        factory.create_squad("rescue", self.towns[1] or 0)
        self.branches = [factory.branch_id("patrol"), factory.branch_id("rescue")]
        self.members = [
            factory.create_member(name=f"队员{i}", branches=("patrol", "rescue")) for i in range(4)
        ]
        self.actor = factory.create_member(
            name="秘书长", roles=(("secretary_general", None, None),)
        )


@pytest.fixture
def world(app: Flask, factory: Factory) -> World:
    return World(app, factory)


add_op = st.tuples(
    st.just("add"),
    st.integers(0, 3),  # member
    st.integers(0, 1),  # branch
    st.integers(0, 2),  # town (2: none)
    st.one_of(
        st.sampled_from([(d - FIRST_DAY).days for d in TIGHT_DAYS]), st.integers(0, SPAN_DAYS)
    ),
    st.integers(0, 23),  # local hour: late evenings land on the next UTC day
    st.sampled_from(["attendance", "manual", "incident"]),
    st.integers(0, 900),
)
correct_op = st.tuples(st.just("correct"), st.integers(0, 10_000), st.integers(-300, 300))
reverse_op = st.tuples(st.just("reverse"), st.integers(0, 10_000))
operations = st.lists(st.one_of(add_op, add_op, correct_op, reverse_op), min_size=1, max_size=30)
day = st.one_of(
    st.sampled_from(TIGHT_DAYS),
    st.integers(0, SPAN_DAYS).map(lambda n: FIRST_DAY + timedelta(days=n)),
)
ranges = st.tuples(st.none() | day, st.none() | day).map(
    lambda r: (min(r), max(r)) if r[0] and r[1] else r
)


def apply(world: World, ops: list[tuple[Any, ...]]) -> None:
    with world.app.app_context():
        s = db.session()
        s.execute(delete(HoursRollup))
        s.execute(delete(hours_span))
        s.execute(delete(hours_span_member))
        s.execute(delete(HoursEntry))
        s.commit()
        originals: list[HoursEntry] = []
        for op in ops:
            if op[0] == "add":
                _, member, branch, town, offset, hour, kind, minutes = op
                at = datetime.combine(FIRST_DAY + timedelta(days=offset), datetime.min.time(), SH)
                entry = hours.add_entry(
                    s,
                    member_id=world.members[member],
                    kind=kind,
                    minutes=minutes,
                    occurred_at=at + timedelta(hours=hour),
                    branch_id=world.branches[branch],
                    town_id=world.towns[town],
                )
                originals.append(entry)
                s.commit()
            elif originals and op[0] == "correct":
                base = originals[op[1] % len(originals)]
                hours.add_entry(
                    s,
                    member_id=base.member_id,
                    kind=HoursKind.CORRECTION,
                    minutes=op[2],
                    occurred_at=base.occurred_at,
                    branch_id=base.branch_id,
                    town_id=base.town_id,
                    references_id=base.id,
                    reason="fix",
                )
                s.commit()
            elif originals and op[0] == "reverse":
                base = originals.pop(op[1] % len(originals))
                hours.reverse_entry(s, actor_id=world.actor, entry=base, reason="undo")
        db.session.remove()


def as_set(report: dict[str, Any]) -> tuple[Any, ...]:
    rows = frozenset((r["key"], r["minutes"], r["turns"], r["members"]) for r in report["rows"])
    return rows, report["total_minutes"], report["turns"], report["members"], report.get("total")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, span=ranges, branch_scope=st.sampled_from([None, 0, 1]))
def test_reports_from_the_rollup_equal_the_ledger(
    world: World, ops: list[tuple[Any, ...]], span: tuple[Any, Any], branch_scope: int | None
) -> None:
    apply(world, ops)
    scope = None if branch_scope is None else frozenset({world.branches[branch_scope]})
    flt = reports.Filter(date_from=span[0], date_to=span[1], branch_ids=scope)
    with world.app.app_context():
        s = db.session()
        for group_by in GROUPINGS:
            fast = reports.hours_report(s, group_by=group_by, flt=flt)
            direct = reports.ledger_report(s, group_by=group_by, flt=flt)
            assert as_set(fast) == as_set(direct), group_by
            # Ordered the same way too (ties broken by the dimension ids, None last).
            assert [r["key"] for r in fast["rows"]] == [r["key"] for r in direct["rows"]]
        for page in (1, 2):
            fast = reports.hours_report(s, group_by=["member"], flt=flt, page=page, page_size=2)
            direct = reports.ledger_report(s, group_by=["member"], flt=flt, page=page, page_size=2)
            assert fast == direct
        assert_rollups_equal_a_rebuild(s)
        db.session.remove()


def assert_rollups_equal_a_rebuild(s: Any) -> None:
    """The rollups as kept entry by entry equal the rollups rebuilt from the ledger."""
    tables = (HoursRollup.__table__, hours_span, hours_span_member)
    kept = [{tuple(r) for r in s.execute(select(t)).all()} for t in tables]
    hours_rollup.rebuild(s)
    rebuilt = [{tuple(r) for r in s.execute(select(t)).all()} for t in tables]
    s.rollback()
    assert kept == rebuilt


def test_two_year_windows() -> None:
    inside = reports.split_range(
        reports.Filter(date(2025, 11, 29), date(2026, 11, 29)), (2025, 2026)
    )
    assert reports.span_window(inside) == reports.Window(2026, 12, 23)
    assert reports.Window(2026, 1, 0).index(date(2025, 1, 1)) == 1
    assert reports.Window(2026, 1, 0).index(date(2026, 12, 1)) == 24
    longer = reports.split_range(reports.Filter(date(2024, 12, 1), date(2026, 1, 31)), (2024, 2026))
    assert reports.span_window(longer) is None
    edge_only = reports.split_range(
        reports.Filter(date(2026, 3, 5), date(2026, 3, 9)), (2026, 2026)
    )
    assert reports.span_window(edge_only) == reports.Window(2026, 1, 0)


def test_split_reads_the_fewer_ledger_days() -> None:
    flt = reports.Filter(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))
    split = reports.split_range(flt, (2025, 2026))
    assert split.whole == {2025: [12], 2026: list(range(1, 12))}
    assert split.pieces == [
        reports.Piece(date(2025, 11, 29), date(2025, 11, 30), 1),
        reports.Piece(date(2026, 11, 30), date(2026, 11, 30), -1),
    ]
    whole = reports.split_range(reports.Filter(date(2026, 2, 1), date(2026, 2, 28)), (2026, 2026))
    assert whole.whole == {2026: [2]} and whole.pieces == []
    assert reports.split_range(reports.Filter(), None).years() == []
    inside = reports.split_range(reports.Filter(date(2026, 3, 5), date(2026, 3, 9)), (2026, 2026))
    assert inside.whole == {} and inside.pieces == [
        reports.Piece(date(2026, 3, 5), date(2026, 3, 9), 1)
    ]


def test_concurrent_entries_for_one_cell_are_all_counted(
    app: Flask, factory: Factory, backend: str
) -> None:
    """Eight threads credit one member's month at once: the rollup row gets every minute."""
    member = factory.create_member(name="并发")
    patrol = factory.branch_id("patrol")
    at = datetime(2026, 3, 3, 9, tzinfo=SH)
    errors: list[BaseException] = []

    def credit() -> None:
        try:
            with app.app_context():
                s = db.session()
                for _ in range(5):
                    hours.add_entry(
                        s,
                        member_id=member,
                        kind="manual",
                        minutes=7,
                        occurred_at=at,
                        branch_id=patrol,
                        town_id=None,
                    )
                    s.commit()
                db.session.remove()
        except BaseException as exc:  # surfaced below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=credit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        row = db.session.scalars(select(HoursRollup).where(HoursRollup.member_id == member)).one()
        assert (row.minutes_3, row.turns_3) == (8 * 5 * 7, 0)
        assert (row.year, row.town_id, row.squad_id) == (2026, 0, 0)


def test_month_by_branch_with_both_kinds_of_edge(world: World) -> None:
    """Jan 10 .. Mar 5: January is read whole minus Jan 1-9 from the ledger, March is read
    from the ledger alone; both must match the direct aggregation."""
    days = [date(2026, 1, 1), date(2026, 1, 20), date(2026, 2, 10), date(2026, 3, 3)]
    ops: list[tuple[Any, ...]] = [
        ("add", i % 2, 0, 0, (d - FIRST_DAY).days, 9, "attendance", 60 * (i + 1))
        for i, d in enumerate(days)
    ] + [("add", 3, 1, 1, (date(2026, 3, 20) - FIRST_DAY).days, 9, "manual", 30)]
    apply(world, ops)
    flt = reports.Filter(date_from=date(2026, 1, 10), date_to=date(2026, 3, 5))
    with world.app.app_context():
        s = db.session()
        fast = reports.hours_report(s, group_by=["month", "branch"], flt=flt)
        direct = reports.ledger_report(s, group_by=["month", "branch"], flt=flt)
        assert [(r["key"], r["minutes"], r["members"]) for r in fast["rows"]] == [
            ("2026-01/patrol", 120, 1),
            ("2026-02/patrol", 180, 1),
            ("2026-03/patrol", 240, 1),
        ]
        assert as_set(fast) == as_set(direct)
        assert (fast["total_minutes"], fast["turns"], fast["members"]) == (540, 3, 2)
        db.session.remove()


@pytest.mark.parametrize(
    "span",
    [
        # Nov 2025 a piece alone (the window's rows need no join), Nov 2026 whole less a piece
        # (each member's net needs both).
        (date(2025, 11, 29), date(2026, 11, 29)),
        # Only pieces of months not read whole: both edge months summed on their own.
        (date(2025, 11, 29), date(2026, 10, 31)),
        (date(2026, 3, 5), date(2026, 3, 9)),
    ],
)
def test_month_by_branch_reads_edge_months_alone_or_joined_as_the_ledger_says(
    world: World, span: tuple[date, date]
) -> None:
    days = [date(2025, 11, 29), date(2025, 11, 30), date(2026, 3, 6), date(2026, 11, 1)]
    days += [date(2026, 11, 29), date(2026, 11, 30), date(2026, 10, 31)]
    ops: list[tuple[Any, ...]] = [
        ("add", i % 4, i % 2, i % 3, (day - FIRST_DAY).days, 10 + i % 12, "attendance", 60 + i)
        for i, day in enumerate(days * 2)
    ]
    ops.append(("correct", 3, -500))  # one member's month goes below zero: not counted
    apply(world, ops)
    flt = reports.Filter(date_from=span[0], date_to=span[1])
    with world.app.app_context():
        s = db.session()
        fast = reports.hours_report(s, group_by=["month", "branch"], flt=flt)
        direct = reports.ledger_report(s, group_by=["month", "branch"], flt=flt)
        assert fast["rows"] and as_set(fast) == as_set(direct)
        assert [(r["month"], r["key"]) for r in fast["rows"]] == [
            (r["month"], r["key"]) for r in direct["rows"]
        ]
        db.session.remove()


def test_month_groupings_total_their_rows_and_count_each_member_once(world: World) -> None:
    """A grouping by month totals minutes and turns over its rows (negative ones and the row of
    entries with no town included) and counts a member once over the whole range, by their net:
    not once per row, and not at all when their net is below zero although one row is above."""
    entries = [
        (0, 0, 0, date(2025, 11, 30), 120),  # only in the partial first month, read alone
        (1, 1, 2, date(2025, 11, 29), 90),  # in the partial first month and in a whole one
        (1, 0, 1, date(2026, 2, 10), 60),
        (2, 0, 0, date(2026, 3, 3), 200),  # above zero in patrol, below in rescue, below overall
        (2, 1, 1, date(2026, 3, 4), 50),
        (3, 1, 2, date(2026, 11, 1), 30),  # in the last month, read whole less a piece
        (3, 1, 2, date(2026, 11, 30), 45),  # the piece left out
    ]
    ops: list[tuple[Any, ...]] = [
        ("add", member, branch, town, (day - FIRST_DAY).days, 9, "attendance", minutes)
        for member, branch, town, day, minutes in entries
    ]
    ops.append(("correct", 4, -300))  # member 2's rescue credit of 4 March
    apply(world, ops)
    rescue = frozenset({world.branches[1]})
    expected = {None: (250, 6, 3), rescue: (-130, 3, 2)}
    with world.app.app_context():
        s = db.session()
        for scope, totals in expected.items():
            flt = reports.Filter(date(2025, 11, 29), date(2026, 11, 29), branch_ids=scope)
            for group_by in (["month", "branch"], ["month", "town"], ["month"]):
                fast = reports.hours_report(s, group_by=group_by, flt=flt)
                assert (fast["total_minutes"], fast["turns"], fast["members"]) == totals
                assert as_set(fast) == as_set(reports.ledger_report(s, group_by=group_by, flt=flt))
        db.session.remove()


def test_a_correction_and_a_reversal_roll_up_in_the_squad_of_their_entry(
    world: World, factory: Factory
) -> None:
    """Rescue gets a squad in the first town after two entries there: the correction of one
    and the reversal of the other still count under no squad, in the rollup as in the ledger,
    and the rollup still equals one rebuilt from the ledger."""
    offset = (date(2026, 3, 3) - FIRST_DAY).days
    apply(
        world,
        [("add", 0, 1, 0, offset, 9, "attendance", 120), ("add", 1, 1, 0, offset, 9, "manual", 60)],
    )
    factory.create_squad("rescue", world.towns[0] or 0)
    with world.app.app_context():
        s = db.session()
        credit, award = s.scalars(select(HoursEntry).order_by(HoursEntry.id)).all()
        hours.add_entry(
            s,
            member_id=credit.member_id,
            kind=HoursKind.CORRECTION,
            minutes=-30,
            occurred_at=credit.occurred_at,
            branch_id=credit.branch_id,
            town_id=credit.town_id,
            references_id=credit.id,
            reason="fix",
        )
        s.commit()
        hours.reverse_entry(s, actor_id=world.actor, entry=award, reason="undo")
        flt = reports.Filter()
        for group_by in (["squad"], ["squad", "month"], ["town"], ["branch"]):
            fast = reports.hours_report(s, group_by=group_by, flt=flt)
            assert as_set(fast) == as_set(reports.ledger_report(s, group_by=group_by, flt=flt))
        squads = reports.hours_report(s, group_by=["squad"], flt=flt)
        assert [(r["key"], r["minutes"], r["turns"]) for r in squads["rows"]] == [("none", 90, 1)]
        assert_rollups_equal_a_rebuild(s)
        db.session.remove()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=operations,
    span=ranges,
    branch_scope=st.sampled_from([None, 0]),
    towns=st.sampled_from([(0,), (1,), (0, 1)]),
)
def test_reports_limited_to_towns_equal_the_ledger_of_those_towns(
    world: World,
    ops: list[tuple[Any, ...]],
    span: tuple[Any, Any],
    branch_scope: int | None,
    towns: tuple[int, ...],
) -> None:
    """A town-scoped coordinator's report (patrol in some towns): read from the rollup, it
    equals the ledger's, and its totals are the patrol entries of those towns (none of no town)
    plus, with no branch asked, everything of the other branch."""
    apply(world, ops)
    patrol = world.branches[0]
    scope = None if branch_scope is None else frozenset({world.branches[branch_scope]})
    allowed = frozenset(t for t in (world.towns[i] for i in towns) if t is not None)
    flt = reports.Filter(span[0], span[1], branch_ids=scope, towns=((patrol, allowed),))
    with world.app.app_context():
        s = db.session()
        entries = s.scalars(select(HoursEntry)).all()
        counted = [
            e
            for e in entries
            if (scope is None or e.branch_id in scope)
            and (e.branch_id != patrol or e.town_id in allowed)
            and (span[0] is None or e.service_day >= span[0])
            and (span[1] is None or e.service_day <= span[1])
        ]
        for group_by in GROUPINGS:
            fast = reports.hours_report(s, group_by=group_by, flt=flt)
            direct = reports.ledger_report(s, group_by=group_by, flt=flt)
            assert as_set(fast) == as_set(direct), group_by
            assert fast["total_minutes"] == sum(e.minutes for e in counted), group_by
            assert fast["turns"] == sum(e.turns for e in counted), group_by
        fast = reports.hours_report(s, group_by=["member"], flt=flt, page=1, page_size=2)
        assert fast == reports.ledger_report(s, group_by=["member"], flt=flt, page=1, page_size=2)
        db.session.remove()
