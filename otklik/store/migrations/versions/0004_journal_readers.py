"""case journal: recorded_at on events, positions of journal readers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import otklik.store.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_at', otklik.store.models.UTCDateTime(), nullable=True))
    op.create_table('journal_readers',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', otklik.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('journal_readers')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_column('recorded_at')
