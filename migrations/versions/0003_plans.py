"""plans: posts, shift templates, plans, shifts, solve runs, assignments and slot offers.

On PostgreSQL an exclusion constraint makes double booking impossible: no member may hold two
active (published or accepted) assignments whose time ranges overlap, across every plan and
branch. SQLite has no such constraint; the publish service checks the same inside its
BEGIN IMMEDIATE write transaction.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NO_DOUBLE_BOOKING = (
    "ALTER TABLE assignment ADD CONSTRAINT ex_assignment_no_double_booking "
    "EXCLUDE USING gist (member_id WITH =, tstzrange(starts_at, ends_at) WITH &&) "
    "WHERE (status IN ('published', 'accepted'))"
)


def upgrade():
    op.create_table('plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('town_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'solving', 'solved', 'published', name='plan_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_plan_ends_after_start')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_plan_branch_id_branch')),
    sa.ForeignKeyConstraint(['created_by'], ['member.id'], name=op.f('fk_plan_created_by_member')),
    sa.ForeignKeyConstraint(['town_id'], ['town.id'], name=op.f('fk_plan_town_id_town')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan'))
    )
    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.create_index('ix_plan_branch_period', ['branch_id', 'starts_on'], unique=False)
    op.create_table('post',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('town_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('radius_m', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('point', 'route', name='post_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('lat BETWEEN -90 AND 90', name=op.f('ck_post_lat_range')),
    sa.CheckConstraint('lon BETWEEN -180 AND 180', name=op.f('ck_post_lon_range')),
    sa.CheckConstraint('radius_m > 0', name=op.f('ck_post_radius_positive')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_post_branch_id_branch')),
    sa.ForeignKeyConstraint(['created_by'], ['member.id'], name=op.f('fk_post_created_by_member')),
    sa.ForeignKeyConstraint(['town_id'], ['town.id'], name=op.f('fk_post_town_id_town')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_post'))
    )
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.create_index('ix_post_branch_town', ['branch_id', 'town_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_post_town_id'), ['town_id'], unique=False)
    op.create_table('shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Enum('day', 'night', name='shift_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('headcount', sa.Integer(), nullable=False),
    sa.Column('skills', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('leader_required', sa.Boolean(), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_shift_ends_after_start')),
    sa.CheckConstraint('headcount > 0', name=op.f('ck_shift_headcount_positive')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_shift_plan_id_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_shift_post_id_post')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift'))
    )
    with op.batch_alter_table('shift', schema=None) as batch_op:
        batch_op.create_index('ix_shift_plan_start', ['plan_id', 'starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_shift_post_id'), ['post_id'], unique=False)
    op.create_table('shift_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('kind', sa.Enum('day', 'night', name='shift_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('headcount', sa.Integer(), nullable=False),
    sa.Column('skills', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('leader_required', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('headcount > 0', name=op.f('ck_shift_template_headcount_positive')),
    sa.CheckConstraint('start_time <> end_time', name=op.f('ck_shift_template_not_empty')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_shift_template_weekday_range')),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_shift_template_post_id_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift_template'))
    )
    with op.batch_alter_table('shift_template', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_template_post_id'), ['post_id'], unique=False)
    op.create_table('solve_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', 'cancelled', name='solve_run_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('time_limit_s', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('filled_slots', sa.Integer(), nullable=True),
    sa.Column('total_slots', sa.Integer(), nullable=True),
    sa.Column('solver_status', sa.String(length=24), nullable=True),
    sa.Column('objective', sa.BigInteger(), nullable=True),
    sa.Column('bound', sa.BigInteger(), nullable=True),
    sa.Column('wall_s', sa.Float(), nullable=True),
    sa.Column('shortfalls', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('progress', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('stats', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_solve_run_plan_id_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['member.id'], name=op.f('fk_solve_run_requested_by_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_solve_run'))
    )
    with op.batch_alter_table('solve_run', schema=None) as batch_op:
        batch_op.create_index('ix_solve_run_plan', ['plan_id', 'id'], unique=False)
        batch_op.create_index('ix_solve_run_status', ['status', 'id'], unique=False)
    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('shift_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('proposed', 'published', 'accepted', 'declined', 'cancelled', 'completed', 'no_show', name='assignment_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('source', sa.Enum('solver', 'manual', 'offer', name='assignment_source', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pending_removal', sa.Boolean(), nullable=False),
    sa.Column('decline_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_assignment_ends_after_start')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_assignment_member_id_member')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_assignment_plan_id_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shift_id'], ['shift.id'], name=op.f('fk_assignment_shift_id_shift'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment'))
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index('ix_assignment_member_start', ['member_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_assignment_plan_status', ['plan_id', 'status'], unique=False)
        batch_op.create_index('ix_assignment_shift', ['shift_id', 'status'], unique=False)
    op.create_table('slot_offer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('declined_assignment_id', sa.Integer(), nullable=False),
    sa.Column('shift_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'taken', 'closed', name='slot_offer_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['declined_assignment_id'], ['assignment.id'], name=op.f('fk_slot_offer_declined_assignment_id_assignment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_slot_offer_member_id_member'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shift_id'], ['shift.id'], name=op.f('fk_slot_offer_shift_id_shift'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_offer'))
    )
    with op.batch_alter_table('slot_offer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slot_offer_declined_assignment_id'), ['declined_assignment_id'], unique=False)
        batch_op.create_index('ix_slot_offer_member_status', ['member_id', 'status'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(NO_DOUBLE_BOOKING)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE assignment DROP CONSTRAINT IF EXISTS ex_assignment_no_double_booking")
    with op.batch_alter_table('slot_offer', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_offer_member_status')
        batch_op.drop_index(batch_op.f('ix_slot_offer_declined_assignment_id'))
    op.drop_table('slot_offer')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_shift')
        batch_op.drop_index('ix_assignment_plan_status')
        batch_op.drop_index('ix_assignment_member_start')
    op.drop_table('assignment')
    with op.batch_alter_table('solve_run', schema=None) as batch_op:
        batch_op.drop_index('ix_solve_run_status')
        batch_op.drop_index('ix_solve_run_plan')
    op.drop_table('solve_run')
    with op.batch_alter_table('shift_template', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_template_post_id'))
    op.drop_table('shift_template')
    with op.batch_alter_table('shift', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_post_id'))
        batch_op.drop_index('ix_shift_plan_start')
    op.drop_table('shift')
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_post_town_id'))
        batch_op.drop_index('ix_post_branch_town')
    op.drop_table('post')
    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_branch_period')
    op.drop_table('plan')
