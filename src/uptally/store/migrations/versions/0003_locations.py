"""locations: probe agents, locations and ingestion (issue 3)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("degraded", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "probes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=True),
        sa.Column("last_contact_at", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True),
        sa.Column("queue_depth", sa.BigInteger(), nullable=True),
        sa.Column("dropped_total", sa.BigInteger(), nullable=False),
        sa.Column("rejected_total", sa.BigInteger(), nullable=False),
        sa.Column("canaries", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_probes")),
    )
    op.create_table(
        "probe_gaps",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_probe_gaps")),
    )
    op.create_index(
        "ix_probe_gaps_location_first_at", "probe_gaps", ["location", "first_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_probe_gaps_location_first_at", table_name="probe_gaps")
    op.drop_table("probe_gaps")
    op.drop_table("probes")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("degraded")
