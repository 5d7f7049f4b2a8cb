"""Healthchecks-style pings: pings.rid and pings.duration_ms, heartbeats.started_rid

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("duration_ms", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_rid", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("started_rid")
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.drop_column("duration_ms")
        batch_op.drop_column("rid")
