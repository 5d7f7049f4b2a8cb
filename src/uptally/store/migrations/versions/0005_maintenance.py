"""maintenance: maintenance windows and the SLA ledger (issue 6)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "latency_days",
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("histogram", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("monitor", "day", name=op.f("pk_latency_days")),
    )
    op.create_table(
        "maintenance_series",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("rrule", sa.Text(), nullable=True),
        sa.Column("cron", sa.String(length=128), nullable=True),
        sa.Column("first", sa.String(length=32), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("monitors", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("cancelled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_series")),
    )
    op.create_table(
        "maintenance_updates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("window_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_updates")),
    )
    with op.batch_alter_table("maintenance_updates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_maintenance_updates_window_id", ["window_id", "created_at"], unique=False
        )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("series", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.BigInteger(), nullable=False),
        sa.Column("scheduled_until", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("monitors", sa.Text(), nullable=False),
        sa.Column("short_notice", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_maintenance_windows_scheduled_for", ["scheduled_for"], unique=False
        )
        batch_op.create_index(
            "ix_maintenance_windows_scheduled_until", ["scheduled_until"], unique=False
        )
        batch_op.create_index("ix_maintenance_windows_series", ["series"], unique=False)
        batch_op.create_index("ix_maintenance_windows_status", ["status"], unique=False)
    op.create_table(
        "sla_alerts",
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy", "component", "kind", name=op.f("pk_sla_alerts")),
    )
    op.create_table(
        "sla_exclusions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=True),
        sa.Column("component", sa.String(length=64), nullable=True),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("removed_at", sa.BigInteger(), nullable=True),
        sa.Column("removed_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_exclusions")),
    )
    with op.batch_alter_table("sla_exclusions", schema=None) as batch_op:
        batch_op.create_index("ix_sla_exclusions_end", ["end"], unique=False)
    op.create_table(
        "sla_periods",
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("policy", "period", name=op.f("pk_sla_periods")),
    )


def downgrade() -> None:
    op.drop_table("sla_periods")
    with op.batch_alter_table("sla_exclusions", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_exclusions_end")
    op.drop_table("sla_exclusions")
    op.drop_table("sla_alerts")
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_windows_status")
        batch_op.drop_index("ix_maintenance_windows_series")
        batch_op.drop_index("ix_maintenance_windows_scheduled_until")
        batch_op.drop_index("ix_maintenance_windows_scheduled_for")
    op.drop_table("maintenance_windows")
    with op.batch_alter_table("maintenance_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_updates_window_id")
    op.drop_table("maintenance_updates")
    op.drop_table("maintenance_series")
    op.drop_table("latency_days")
