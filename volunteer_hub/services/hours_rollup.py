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

from sqlalchemy import Integer, Table, case, cast, delete, extract, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from volunteer_hub.models.attendance import HoursEntry, HoursRollup

MONTHS = range(1, 13)
KEY = ("year", "branch_id", "member_id", "town_id", "squad_id")
TABLE = typed(Table, HoursRollup.__table__)


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
    m, t = f"minutes_{service_month.month}", f"turns_{service_month.month}"
    values = {
        "year": service_month.year,
        "branch_id": branch_id,
        "member_id": member_id,
        "town_id": town_id or 0,
        "squad_id": squad_id or 0,
        m: minutes,
        t: turns,
    }
    dialect = session.get_bind().dialect.name
    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TABLE)
    stmt = stmt.values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={m: TABLE.c[m] + stmt.excluded[m], t: TABLE.c[t] + stmt.excluded[t]},
    )
    session.execute(stmt)


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
    return int(session.scalar(select(func.count()).select_from(HoursRollup)) or 0)


def year_span(session: Session) -> tuple[int, int] | None:
    """The first and last year with any ledger entry (from the rollup's key ends), or None."""
    low, high = session.execute(
        select(func.min(HoursRollup.year), func.max(HoursRollup.year))
    ).one()
    return None if low is None else (int(low), int(high))
