"""endpoints.parked_until: new deliveries of a stalled endpoint are queued already parked

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parked_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("parked_until")
