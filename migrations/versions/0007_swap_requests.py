"""swap requests between two volunteers of one plan.

A volunteer asks another to take their shift, for one of theirs or as a hand-over; it is made
when the other accepts and every hard rule still holds.

Revision ID: 0007
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('swap_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('requester_assignment_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('target_assignment_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'approved', 'declined', 'cancelled', 'refused', name='swap_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('refusal', sa.Text(), nullable=True),
    sa.Column('violations', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('requester_new_assignment_id', sa.Integer(), nullable=True),
    sa.Column('target_new_assignment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('requester_id <> target_id', name=op.f('ck_swap_request_not_self')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_swap_request_plan_id_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requester_assignment_id'], ['assignment.id'], name=op.f('fk_swap_request_requester_assignment_id_assignment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requester_id'], ['member.id'], name=op.f('fk_swap_request_requester_id_member'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requester_new_assignment_id'], ['assignment.id'], name=op.f('fk_swap_request_requester_new_assignment_id_assignment'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_assignment_id'], ['assignment.id'], name=op.f('fk_swap_request_target_assignment_id_assignment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['member.id'], name=op.f('fk_swap_request_target_id_member'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_new_assignment_id'], ['assignment.id'], name=op.f('fk_swap_request_target_new_assignment_id_assignment'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swap_request'))
    )
    with op.batch_alter_table('swap_request', schema=None) as batch_op:
        batch_op.create_index('ix_swap_request_requester', ['requester_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_swap_request_requester_assignment_id'), ['requester_assignment_id'], unique=False)
        batch_op.create_index('ix_swap_request_target', ['target_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_swap_request_target_assignment_id'), ['target_assignment_id'], unique=False)



def downgrade():
    with op.batch_alter_table('swap_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_swap_request_target_assignment_id'))
        batch_op.drop_index('ix_swap_request_target')
        batch_op.drop_index(batch_op.f('ix_swap_request_requester_assignment_id'))
        batch_op.drop_index('ix_swap_request_requester')

    op.drop_table('swap_request')
