"""monitoring_gaps: the times uptally was not running (issue 12)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_gaps",
        sa.Column("start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("clean", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("start", name=op.f("pk_monitoring_gaps")),
    )
    op.create_index("ix_monitoring_gaps_end", "monitoring_gaps", ["end"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_monitoring_gaps_end", table_name="monitoring_gaps")
    op.drop_table("monitoring_gaps")
