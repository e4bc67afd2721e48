"""The hours rollup: the ledger summed per year, branch, member, town and squad, by month.

`bump` runs in the same transaction as every ledger entry (see `hours.add_entry`), so the
rollup is exactly the ledger, summed; `rebuild` recomputes it from the ledger (the migration
backfills the same way). Reports read whole months from here and only the days at the edges of
a range from the ledger (see `services.reports`).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    Integer,
    Table,
    TextClause,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from volunteer_hub.models.attendance import (
    SPAN_MONTHS,
    HoursEntry,
    HoursRollup,
    hours_span,
    hours_span_member,
)

MONTHS = range(1, 13)
KEY = ("year", "branch_id", "member_id", "town_id", "squad_id")
TABLE = typed(Table, HoursRollup.__table__)


SPAN = range(1, SPAN_MONTHS + 1)


def minutes_col(month: int) -> Any:
    return TABLE.c[f"minutes_{month}"]


def turns_col(month: int) -> Any:
    return TABLE.c[f"turns_{month}"]


def bump(
    session: Session,
    *,
    service_month: date,
    branch_id: int,
    member_id: int,
    town_id: int | None,
    squad_id: int | None,
    minutes: int,
    turns: int,
) -> None:
    """Add one entry's minutes and turns to its rollup cell (no commit).

    An upsert, so concurrent entries for one cell serialise on its row (PostgreSQL) or on
    SQLite's write lock, and neither is lost.
    """
    session.execute(
        _CELL_UPSERTS[service_month.month],
        {
            "year": service_month.year,
            "branch_id": branch_id,
            "member_id": member_id,
            "town_id": town_id or 0,
            "squad_id": squad_id or 0,
            "minutes": minutes,
            "turns": turns,
        },
    )
    _bump_span(session, service_month, branch_id, member_id, minutes, turns)


def _cell_upsert(month: int) -> TextClause:
    """The upsert of an entry into its rollup cell, for entries of `month` (PostgreSQL and
    SQLite alike); written once per month, as `_span_upsert` is."""
    m, t = f"minutes_{month}", f"turns_{month}"
    return text(
        f"INSERT INTO {TABLE.name} ({', '.join(KEY)}, {m}, {t}) "
        f"VALUES ({', '.join(':' + key for key in KEY)}, :minutes, :turns) "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
        f"{m} = {TABLE.name}.{m} + excluded.{m}, {t} = {TABLE.name}.{t} + excluded.{t}"
    )


_CELL_UPSERTS = {month: _cell_upsert(month) for month in MONTHS}


def _span_upsert(table: Table, keys: tuple[str, ...], month: int) -> TextClause:
    """The upsert of an entry of `month` into the running totals of its two windows
    (PostgreSQL and SQLite alike): window `year_0` holds it as month 12 + `month`, window
    `year_1` as `month`, so each adds the entry's `minutes` and `turns` to every column from
    there on; columns before `month` are untouched.

    Written once per month, as text: built with SQLAlchemy's insert for each entry, its 48
    columns and their 48 updates were constructed and compiled afresh every time (a check-out
    took 18-22 ms of CPU in-process that way, 8-10 ms this way). Under 4,096 characters and
    with a few parameters, so that psycopg keeps its parsed form too."""
    span = [j for j in SPAN if j >= month]
    columns = [f"{kind}_{j}" for kind in ("minutes", "turns") for j in span]

    def row(n: int) -> str:
        start = 12 + month if n == 0 else month
        values = [f":year_{n}", *(f":{key}" for key in keys)]
        values += [f":{kind}" if j >= start else "0" for kind in ("minutes", "turns") for j in span]
        return "(" + ",".join(values) + ")"

    return text(
        f"INSERT INTO {table.name} AS s (year,{','.join(keys)},{','.join(columns)}) "
        f"VALUES {row(0)},{row(1)} "
        f"ON CONFLICT (year,{','.join(keys)}) DO UPDATE SET "
        + ",".join(f"{c}=s.{c}+excluded.{c}" for c in columns)
    )


_SPAN_UPSERTS = {
    month: (
        _span_upsert(hours_span, ("branch_id", "member_id"), month),
        _span_upsert(hours_span_member, ("member_id",), month),
    )
    for month in MONTHS
}


def _bump_span(
    session: Session, service_month: date, branch_id: int, member_id: int, minutes: int, turns: int
) -> None:
    """Add the entry to the running totals of windows Y (as month 12+m) and Y+1 (as month
    m), per branch and member and per member: both rows of a table in one upsert, every
    column from the entry's month on."""
    params = {
        "year_0": service_month.year,
        "year_1": service_month.year + 1,
        "member_id": member_id,
        "minutes": minutes,
        "turns": turns,
    }
    per_branch, per_member = _SPAN_UPSERTS[service_month.month]
    session.execute(per_branch, {**params, "branch_id": branch_id})
    session.execute(per_member, params)


def rebuild(session: Session) -> int:
    """Recompute the whole rollup from the ledger, in the caller's transaction (no commit).

    :return: rollup rows written.
    """
    session.execute(delete(HoursRollup))
    month = extract("month", HoursEntry.service_month)
    sums = [
        func.sum(case((month == k, HoursEntry.minutes), else_=0)).label(f"minutes_{k}")
        for k in MONTHS
    ] + [
        func.sum(case((month == k, HoursEntry.turns), else_=0)).label(f"turns_{k}") for k in MONTHS
    ]
    year = cast(extract("year", HoursEntry.service_month), Integer)
    keys = [
        year.label("year"),
        HoursEntry.branch_id,
        HoursEntry.member_id,
        func.coalesce(HoursEntry.town_id, 0).label("town_id"),
        func.coalesce(HoursEntry.squad_id, 0).label("squad_id"),
    ]
    source = select(*keys, *sums).group_by(*keys)
    columns = [*KEY, *(f"minutes_{k}" for k in MONTHS), *(f"turns_{k}" for k in MONTHS)]
    session.execute(insert(HoursRollup).from_select(columns, source))
    _rebuild_span(session)
    return int(session.scalar(select(func.count()).select_from(HoursRollup)) or 0)


def _rebuild_span(session: Session) -> None:
    """`hours_span` and `hours_span_member` from the ledger (as the migration backfills)."""
    year = cast(extract("year", HoursEntry.service_month), Integer)
    month = cast(extract("month", HoursEntry.service_month), Integer)
    common = [HoursEntry.branch_id, HoursEntry.member_id, HoursEntry.minutes, HoursEntry.turns]
    placed = union_all(
        select(year.label("w"), (month + 12).label("idx"), *common),
        select((year + 1).label("w"), month.label("idx"), *common),
    ).subquery()
    sums = [
        func.sum(case((placed.c.idx <= j, placed.c[kind]), else_=0))
        for kind in ("minutes", "turns")
        for j in SPAN
    ]
    names = [f"{kind}_{j}" for kind in ("minutes", "turns") for j in SPAN]
    for table, key_names in (
        (hours_span, ["branch_id", "member_id"]),
        (hours_span_member, ["member_id"]),
    ):
        session.execute(delete(table))
        keys = [placed.c.w, *[placed.c[k] for k in key_names]]
        session.execute(
            insert(table).from_select(
                ["year", *key_names, *names], select(*keys, *sums).group_by(*keys)
            )
        )


def year_span(session: Session) -> tuple[int, int] | None:
    """The first and last year with any ledger entry (from the rollup's key ends), or None."""
    low, high = session.execute(
        select(func.min(HoursRollup.year), func.max(HoursRollup.year))
    ).one()
    return None if low is None else (int(low), int(high))
