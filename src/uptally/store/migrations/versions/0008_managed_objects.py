"""managed_objects and monitor_pauses: objects made at runtime, and paused monitors (issue 14)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managed_objects",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "id", name=op.f("pk_managed_objects")),
    )
    op.create_index("ix_managed_objects_revision", "managed_objects", ["revision"], unique=False)
    op.create_table(
        "monitor_pauses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=True),
        sa.Column("paused_by", sa.String(length=128), nullable=False),
        sa.Column("resumed_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_pauses")),
    )
    op.create_index(
        "ix_monitor_pauses_monitor_start", "monitor_pauses", ["monitor", "start"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_monitor_pauses_monitor_start", table_name="monitor_pauses")
    op.drop_table("monitor_pauses")
    op.drop_index("ix_managed_objects_revision", table_name="managed_objects")
    op.drop_table("managed_objects")
