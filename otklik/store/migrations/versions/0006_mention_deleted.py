"""mentions.deleted_at: when the platform said the post was deleted or removed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import otklik.store.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', otklik.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
