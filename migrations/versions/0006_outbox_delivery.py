"""outbox delivery: per-device outcomes, announcements, once-per-tick job markers.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('outbox_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('sent', 'rejected', name='delivery_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('fcm_name', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_outbox_delivery_device_id_device'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox_message.id'], name=op.f('fk_outbox_delivery_outbox_id_outbox_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_delivery')),
    sa.UniqueConstraint('outbox_id', 'device_id', name=op.f('uq_outbox_delivery_outbox_id_device_id'))
    )
    with op.batch_alter_table('outbox_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_delivery_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_delivery_outbox_id'), ['outbox_id'], unique=False)

    op.create_table('announcement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('town_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('fanning_out', 'done', name='announcement_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['member.id'], name=op.f('fk_announcement_author_id_member'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_announcement_branch_id_branch')),
    sa.ForeignKeyConstraint(['town_id'], ['town.id'], name=op.f('fk_announcement_town_id_town')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcement'))
    )

    op.create_table('job_tick',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('last_tick', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_tick'))
    )


def downgrade():
    op.drop_table('job_tick')
    op.drop_table('announcement')
    with op.batch_alter_table('outbox_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_delivery_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_delivery_device_id'))

    op.drop_table('outbox_delivery')
