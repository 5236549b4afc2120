"""job locks: named leases with an owner and an expiry (one scheduler per database)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import otklik.store.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_locks',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('acquired_at', otklik.store.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', otklik.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('job_locks')
