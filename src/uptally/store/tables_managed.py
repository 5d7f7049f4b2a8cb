"""Tables of what is managed at runtime: objects made through the API, and monitor pauses."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from uptally.store.tables import NAME, metadata, sequence

# Monitors, components, status pages… made through the API (or `config apply`): one row per
# object and kind, its document in the config schema as JSON. A deleted object keeps its row
# (deleted_at set) so that its history (results, outages, SLA) still names what it was.
managed_objects = Table(
    "managed_objects",
    metadata,
    Column("kind", String(32), primary_key=True),  # monitor, component, status_page, location
    Column("id", String(NAME), primary_key=True),
    Column("document", Text, nullable=False),  # the object as config data (JSON)
    Column("version", Integer, nullable=False),  # ETag; +1 on every change
    Column("revision", BigInteger, nullable=False),  # store.managed: what changed after N
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_managed_objects_revision", "revision"),
)

# Times a monitor was paused by an operator: neither up nor down ("not monitored" in the SLA).
monitor_pauses = Table(
    "monitor_pauses",
    metadata,
    Column("id", sequence(), primary_key=True, autoincrement=True),
    Column("monitor", String(NAME), nullable=False),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=True),  # null while paused
    Column("paused_by", String(128), nullable=False),
    Column("resumed_by", String(128), nullable=True),
    Index("ix_monitor_pauses_monitor_start", "monitor", "start"),
)
