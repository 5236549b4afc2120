"""console sessions: server-side records of logins, so a session can be revoked

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import otklik.store.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', otklik.store.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', otklik.store.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', otklik.store.models.UTCDateTime(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))
        batch_op.drop_index(batch_op.f('ix_console_sessions_created_at'))
    op.drop_table('console_sessions')
