"""attendance: attendance, the append-only hours ledger, idempotency records.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('idempotency_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('endpoint', sa.String(length=100), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.SmallInteger(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_idempotency_record_member_id_member'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_record')),
    sa.UniqueConstraint('member_id', 'key', name=op.f('uq_idempotency_record_member_id_key'))
    )

    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_record_created_at'), ['created_at'], unique=False)

    op.create_table('attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('check_in_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('check_in_lat', sa.Float(), nullable=True),
    sa.Column('check_in_lon', sa.Float(), nullable=True),
    sa.Column('check_in_accuracy_m', sa.Float(), nullable=True),
    sa.Column('check_in_client_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_in_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_out_lat', sa.Float(), nullable=True),
    sa.Column('check_out_lon', sa.Float(), nullable=True),
    sa.Column('check_out_accuracy_m', sa.Float(), nullable=True),
    sa.Column('check_out_client_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_out_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_late', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('open', 'closed', 'auto_closed', 'confirmed', name='attendance_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('service_minutes', sa.Integer(), nullable=True),
    sa.Column('confirmed_by', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('check_in_lat IS NULL OR (check_in_lat BETWEEN -90 AND 90)', name=op.f('ck_attendance_in_lat')),
    sa.CheckConstraint('check_in_lon IS NULL OR (check_in_lon BETWEEN -180 AND 180)', name=op.f('ck_attendance_in_lon')),
    sa.CheckConstraint('check_out_at IS NULL OR check_out_at >= check_in_at', name=op.f('ck_attendance_out_after_in')),
    sa.CheckConstraint('service_minutes IS NULL OR service_minutes >= 0', name=op.f('ck_attendance_minutes_positive')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_attendance_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['confirmed_by'], ['member.id'], name=op.f('fk_attendance_confirmed_by_member')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_attendance_member_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_attendance_assignment_id'))
    )

    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendance_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_attendance_open', ['status', 'check_in_at'], unique=False)

    op.create_table('hours_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('attendance', 'correction', 'manual', 'reversal', 'incident', name='hours_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('turns', sa.SmallInteger(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('town_id', sa.Integer(), nullable=True),
    sa.Column('squad_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('service_month', sa.Date(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('attendance_id', sa.Integer(), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('references_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('turns BETWEEN -1 AND 1', name=op.f('ck_hours_entry_turns_range')),
    sa.ForeignKeyConstraint(['actor_id'], ['member.id'], name=op.f('fk_hours_entry_actor_id_member')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_hours_entry_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['attendance_id'], ['attendance.id'], name=op.f('fk_hours_entry_attendance_id_attendance')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_hours_entry_branch_id_branch')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_hours_entry_member_id_member')),
    sa.ForeignKeyConstraint(['references_id'], ['hours_entry.id'], name=op.f('fk_hours_entry_references_id_hours_entry')),
    sa.ForeignKeyConstraint(['squad_id'], ['squad.id'], name=op.f('fk_hours_entry_squad_id_squad')),
    sa.ForeignKeyConstraint(['town_id'], ['town.id'], name=op.f('fk_hours_entry_town_id_town')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hours_entry'))
    )

    with op.batch_alter_table('hours_entry', schema=None) as batch_op:
        batch_op.create_index('ix_hours_assignment', ['assignment_id'], unique=False)
        batch_op.create_index('ix_hours_branch_month', ['branch_id', 'service_month', 'member_id', 'service_day', 'minutes', 'turns'], unique=False)
        batch_op.create_index('ix_hours_day_branch', ['service_day', 'branch_id'], unique=False)
        batch_op.create_index('ix_hours_incident', ['incident_id'], unique=False)
        batch_op.create_index('ix_hours_member_day', ['member_id', 'service_day'], unique=False)
        batch_op.create_index('ix_hours_references', ['references_id'], unique=False)


def downgrade():
    with op.batch_alter_table('hours_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_hours_references')
        batch_op.drop_index('ix_hours_member_day')
        batch_op.drop_index('ix_hours_incident')
        batch_op.drop_index('ix_hours_day_branch')
        batch_op.drop_index('ix_hours_branch_month')
        batch_op.drop_index('ix_hours_assignment')

    op.drop_table('hours_entry')

    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_index('ix_attendance_open')
        batch_op.drop_index(batch_op.f('ix_attendance_member_id'))

    op.drop_table('attendance')

    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_record_created_at'))

    op.drop_table('idempotency_record')
