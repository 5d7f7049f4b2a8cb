"""The database schema (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Times are integer milliseconds since the Unix epoch, UTC (columns named `at`, `start`, `end`,
`*_at`): exact, compact, fast to compare and the same on both databases.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def sequence() -> BigInteger:
    """An auto-incrementing key: INTEGER on SQLite (its rowid), BIGINT elsewhere."""
    return BigInteger().with_variant(Integer, "sqlite")


ID = 40  # length of ids (ours are 26 characters; agents may send up to 40)
NAME = 64  # monitor, component and location ids

results = Table(
    "results",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("monitor", String(NAME), nullable=False),
    Column("location", String(NAME), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("latency_ms", Float),
    Column("error", String(32)),
    Column("message", Text, nullable=False, default=""),
    # The probe's own network failed its canaries: a failure then says nothing about the target.
    Column("degraded", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_results_monitor_at", "monitor", "at"),
    Index("ix_results_monitor_location_at", "monitor", "location", "at"),
)

pings = Table(
    "pings",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("monitor", String(NAME), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # success | start | fail | exit | log
    Column("exit_code", Integer),
    Column("method", String(8), nullable=False),
    Column("remote", String(64)),
    Column("user_agent", String(256)),
    Column("body", Text),
    Column("rid", String(36)),  # a Healthchecks run id (?rid=) pairing a start with its end
    Column("duration_ms", BigInteger),  # an end ping's run time, from its start
    Index("ix_pings_monitor_at", "monitor", "at"),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("monitor", String(NAME), primary_key=True),
    Column("token", String(128), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_ping_at", BigInteger),
    Column("last_kind", String(16)),
    Column("started_at", BigInteger),  # a /start not yet followed by success or failure
    Column("started_rid", String(36)),  # that /start's run id
)

location_states = Table(
    "location_states",
    metadata,
    Column("monitor", String(NAME), primary_key=True),
    Column("location", String(NAME), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", BigInteger),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_id", String(ID)),
    Column("last_at", BigInteger),
    Column("last_ok", Boolean),
    Column("last_latency_ms", Float),
    Column("last_error", String(32)),
    Column("last_message", Text),
    Column("runs", Text, nullable=False),  # JSON: the evaluator's timeline
)

monitor_states = Table(
    "monitor_states",
    metadata,
    Column("monitor", String(NAME), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

outages = Table(
    "outages",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("monitor", String(NAME)),  # null for a backfill recorded on a component
    Column("component", String(NAME)),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger),
    Column("verified", Boolean, nullable=False),
    Column("locations", Text, nullable=False),  # JSON {name: {start, end}}
    Column("reason", Text, nullable=False, default=""),
    Column("source", String(16), nullable=False),  # detected | manual
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_outages_monitor_start", "monitor", "start"),
    Index("ix_outages_component_start", "component", "start"),
    Index("ix_outages_end", "end"),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("id", String(ID), nullable=False, unique=True),
    Column("kind", String(48), nullable=False),
    Column("subject", String(NAME), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("data", Text, nullable=False),  # JSON
    Column("created_at", BigInteger, nullable=False),
)

probes = Table(
    "probes",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("state", String(16), nullable=False),  # up | degraded | offline | never
    Column("since", BigInteger),
    Column("last_contact_at", BigInteger),
    Column("version", String(64)),
    Column("address", String(64)),
    Column("clock_offset_ms", BigInteger),
    Column("queue_depth", BigInteger),
    Column("dropped_total", BigInteger, nullable=False, default=0),
    Column("rejected_total", BigInteger, nullable=False, default=0),
    Column("canaries", Text, nullable=False, default="[]"),  # JSON [{target, ok, error}]
    Column("updated_at", BigInteger, nullable=False),
)

probe_gaps = Table(
    "probe_gaps",
    metadata,
    Column("seq", sequence(), primary_key=True, autoincrement=True),
    Column("location", String(NAME), nullable=False),
    Column("monitor", String(NAME), nullable=False),
    Column("first_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("reported_at", BigInteger, nullable=False),
    Index("ix_probe_gaps_location_first_at", "location", "first_at"),
)

rollups = Table(
    "rollups",
    metadata,
    Column("monitor", String(NAME), primary_key=True),
    Column("location", String(NAME), primary_key=True),
    Column("hour", BigInteger, primary_key=True),  # start of the UTC hour, ms
    Column("count", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("latency_sum", Float, nullable=False),
    Column("latency_max", Float, nullable=False),
    Column("histogram", Text, nullable=False),  # JSON {bucket: count}, see uptally.histogram
    Index("ix_rollups_hour", "hour"),
)

# Times uptally itself was not running (no instance was): nothing was monitored then.
monitoring_gaps = Table(
    "monitoring_gaps",
    metadata,
    # Its last sign of life: instances of a cluster that start together record one gap.
    Column("start", BigInteger, primary_key=True, autoincrement=False),
    Column("end", BigInteger, nullable=False),  # the restart
    Column("clean", Boolean, nullable=False),  # stopped cleanly (else it crashed or was killed)
    Column("created_at", BigInteger, nullable=False),
    Index("ix_monitoring_gaps_end", "end"),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
