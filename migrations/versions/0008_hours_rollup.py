"""hours rollup: the ledger summed per year, branch, member, town and squad, by month.

Reports read whole months from this table instead of scanning the ledger. Existing ledger rows
are summed into it here; from then on `services.hours.add_entry` keeps it exact in the same
transaction as each entry.

Revision ID: 0008
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

MONTHS = range(1, 13)
SPAN = range(1, 25)


def _backfill():
    """Sum the existing ledger into the rollup (portable SQL: extract() compiles to
    EXTRACT on PostgreSQL and strftime on SQLite)."""
    entry = sa.table(
        "hours_entry",
        sa.column("member_id", sa.Integer),
        sa.column("branch_id", sa.Integer),
        sa.column("town_id", sa.Integer),
        sa.column("squad_id", sa.Integer),
        sa.column("service_month", sa.Date),
        sa.column("minutes", sa.Integer),
        sa.column("turns", sa.Integer),
    )
    keys = ["year", "branch_id", "member_id", "town_id", "squad_id"]
    sums = [f"minutes_{k}" for k in MONTHS] + [f"turns_{k}" for k in MONTHS]
    rollup = sa.table("hours_rollup", *[sa.column(name, sa.Integer) for name in keys + sums])
    month = sa.extract("month", entry.c.service_month)
    key_exprs = [
        sa.cast(sa.extract("year", entry.c.service_month), sa.Integer),
        entry.c.branch_id,
        entry.c.member_id,
        sa.func.coalesce(entry.c.town_id, 0),
        sa.func.coalesce(entry.c.squad_id, 0),
    ]
    sum_exprs = [
        sa.func.sum(sa.case((month == k, entry.c[column]), else_=0))
        for column in ("minutes", "turns")
        for k in MONTHS
    ]
    source = sa.select(*key_exprs, *sum_exprs).group_by(*key_exprs)
    op.execute(rollup.insert().from_select(keys + sums, source))


def upgrade():
    op.create_table(
        "hours_rollup",
        sa.Column("year", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("branch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("town_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("squad_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("minutes_1", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_2", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_3", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_4", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_5", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_6", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_7", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_8", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_9", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_10", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_11", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minutes_12", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_1", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_2", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_3", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_4", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_5", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_6", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_7", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_8", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_9", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_10", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_11", sa.Integer(), server_default="0", nullable=False),
        sa.Column("turns_12", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branch.id"], name=op.f("fk_hours_rollup_branch_id_branch")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_hours_rollup_member_id_member")
        ),
        sa.PrimaryKeyConstraint(
            "year", "branch_id", "member_id", "town_id", "squad_id", name=op.f("pk_hours_rollup")
        ),
    )
    with op.batch_alter_table("hours_rollup", schema=None) as batch_op:
        batch_op.create_index("ix_hours_rollup_year_member", ["year", "member_id"], unique=False)
    op.create_table(
        "hours_span",
        sa.Column("year", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("branch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        *[
            sa.Column(f"{kind}_{j}", sa.Integer(), server_default="0", nullable=False)
            for kind in ("minutes", "turns")
            for j in SPAN
        ],
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branch.id"], name=op.f("fk_hours_span_branch_id_branch")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_hours_span_member_id_member")
        ),
        sa.PrimaryKeyConstraint("year", "branch_id", "member_id", name=op.f("pk_hours_span")),
    )
    op.create_table(
        "hours_span_member",
        sa.Column("year", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        *[
            sa.Column(f"{kind}_{j}", sa.Integer(), server_default="0", nullable=False)
            for kind in ("minutes", "turns")
            for j in SPAN
        ],
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_hours_span_member_member_id_member")
        ),
        sa.PrimaryKeyConstraint("year", "member_id", name=op.f("pk_hours_span_member")),
    )
    _backfill()
    _backfill_span("hours_span", ["year", "branch_id", "member_id"])
    _backfill_span("hours_span_member", ["year", "member_id"])


def _backfill_span(name, keys):
    """Running totals per (year, branch, member) over the years Y-1 and Y: an entry of year
    Y is month 12+m of window Y and month m of window Y+1 (as `hours_rollup.bump` writes)."""
    entry = sa.table(
        "hours_entry",
        sa.column("member_id", sa.Integer),
        sa.column("branch_id", sa.Integer),
        sa.column("service_month", sa.Date),
        sa.column("minutes", sa.Integer),
        sa.column("turns", sa.Integer),
    )
    sums = [f"{kind}_{j}" for kind in ("minutes", "turns") for j in SPAN]
    span = sa.table(name, *[sa.column(column, sa.Integer) for column in keys + sums])
    year = sa.cast(sa.extract("year", entry.c.service_month), sa.Integer)
    month = sa.cast(sa.extract("month", entry.c.service_month), sa.Integer)
    common = [entry.c.branch_id, entry.c.member_id, entry.c.minutes, entry.c.turns]
    placed = sa.union_all(
        sa.select(year.label("w"), (month + 12).label("idx"), *common),
        sa.select((year + 1).label("w"), month.label("idx"), *common),
    ).subquery()
    key_exprs = [placed.c.w] + [placed.c[key] for key in keys[1:]]
    sum_exprs = [
        sa.func.sum(sa.case((placed.c.idx <= j, placed.c[kind]), else_=0))
        for kind in ("minutes", "turns")
        for j in SPAN
    ]
    source = sa.select(*key_exprs, *sum_exprs).group_by(*key_exprs)
    op.execute(span.insert().from_select(keys + sums, source))


def downgrade():
    op.drop_table("hours_span_member")
    op.drop_table("hours_span")
    with op.batch_alter_table("hours_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_hours_rollup_year_member")

    op.drop_table("hours_rollup")
