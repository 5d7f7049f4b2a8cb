"""Tables of maintenance windows and the SLA ledger (registered on the shared metadata)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text

from uptally.store.tables import ID, NAME, metadata

ACTOR = 128

# Every window, one-off or an occurrence of a recurring one (the read model of the status page).
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("series", String(NAME)),  # the recurring window it belongs to, if any
    Column("source", String(16), nullable=False),  # api | config
    Column("title", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("status", String(16), nullable=False),  # scheduled | in_progress | completed | …
    Column("scheduled_for", BigInteger, nullable=False),
    Column("scheduled_until", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("completed_at", BigInteger),
    Column("components", Text, nullable=False),  # JSON list of ids
    Column("monitors", Text, nullable=False),  # JSON list of ids
    Column("short_notice", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Index("ix_maintenance_windows_status", "status"),
    Index("ix_maintenance_windows_scheduled_for", "scheduled_for"),
    Index("ix_maintenance_windows_scheduled_until", "scheduled_until"),
    Index("ix_maintenance_windows_series", "series"),
)

# Recurring windows: expanded into maintenance_windows a while ahead (see uptally.maintenance).
maintenance_series = Table(
    "maintenance_series",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("rrule", Text),
    Column("cron", String(128)),
    Column("first", String(32)),  # naive local ISO time: DTSTART, or the earliest start
    Column("duration_ms", BigInteger, nullable=False),
    Column("until", BigInteger),
    Column("timezone", String(64), nullable=False),
    Column("components", Text, nullable=False),
    Column("monitors", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("cancelled_at", BigInteger),
)

maintenance_updates = Table(
    "maintenance_updates",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("window_id", String(NAME), nullable=False),
    Column("status", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Index("ix_maintenance_updates_window_id", "window_id", "created_at"),
)

sla_exclusions = Table(
    "sla_exclusions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("policy", String(NAME)),  # null: every policy
    Column("component", String(NAME)),  # null: every component
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(16), nullable=False),  # api | config
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("removed_at", BigInteger),
    Column("removed_by", String(ACTOR)),
    Index("ix_sla_exclusions_end", "end"),
)

# Which burn-rate and breach alerts are firing, so that a restart does not alert again.
sla_alerts = Table(
    "sla_alerts",
    metadata,
    Column("policy", String(NAME), primary_key=True),
    Column("component", String(NAME), primary_key=True),
    Column("kind", String(48), primary_key=True),  # burn:<long>:<short> | breached
    Column("period", String(16), nullable=False),
    Column("firing", Boolean, nullable=False),
    Column("since", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Closed periods: the ledger as it was when the period closed (what was billed).
sla_periods = Table(
    "sla_periods",
    metadata,
    Column("policy", String(NAME), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=False),
    Column("ledger", Text, nullable=False),  # JSON: the report document of that policy
)

# Latency histograms merged per UTC day, for days whose hourly rollups can no longer change
# (older than the evaluation horizon): a month's percentiles read 30 rows a monitor, not 720.
latency_days = Table(
    "latency_days",
    metadata,
    Column("monitor", String(NAME), primary_key=True),
    Column("day", BigInteger, primary_key=True),  # start of the UTC day, ms
    Column("samples", BigInteger, nullable=False),
    Column("histogram", Text, nullable=False),  # JSON {bucket: count}, see uptally.histogram
)
