"""Tables of communication: incidents, commitments, channels, subscribers, deliveries (issue 5)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from uptally.store.tables import ID, NAME, metadata, sequence

ACTOR = 128
TARGET = 128  # channel:<id> | subscriber:<id>

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("title", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("impact", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("identified_at", BigInteger),
    Column("monitoring_at", BigInteger),
    Column("resolved_at", BigInteger),
    Column("last_post_at", BigInteger),
    Column("created_by", String(ACTOR), nullable=False),
    Column("automatic", Boolean, nullable=False),
    Column("automated", Boolean, nullable=False),
    Column("outages", Text, nullable=False),  # JSON {monitor: outage id} followed by automation
    Column("runbook", String(NAME)),
    # Bumped first in every change: takes the write lock (SQLite) or the row lock (PostgreSQL).
    Column("version", Integer, nullable=False),
    Index("ix_incidents_started_at", "started_at"),
    Index("ix_incidents_resolved_at", "resolved_at"),
)

incident_components = Table(
    "incident_components",
    metadata,
    Column("incident", String(ID), primary_key=True),
    Column("component", String(NAME), primary_key=True),
    Column("status", String(24), nullable=False),
    Column("worst", String(24), nullable=False),
    Index("ix_incident_components_component", "component"),
)

incident_updates = Table(
    "incident_updates",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("incident", String(ID), nullable=False),
    Column("status", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("components", Text, nullable=False),  # JSON {component: status} at this update
    Column("created_at", BigInteger, nullable=False),
    Column("author", String(ACTOR), nullable=False),
    Column("automatic", Boolean, nullable=False),
    Index("ix_incident_updates_incident_created_at", "incident", "created_at"),
)

postmortems = Table(
    "postmortems",
    metadata,
    Column("incident", String(ID), primary_key=True),
    Column("body", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("published_at", BigInteger),
    Column("author", String(ACTOR), nullable=False),
)

runbook_steps = Table(
    "runbook_steps",
    metadata,
    Column("incident", String(ID), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("phase", String(64), nullable=False),
    Column("title", String(256), nullable=False),
    Column("done_at", BigInteger),
    Column("done_by", String(ACTOR)),
)

commitments = Table(
    "commitments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("incident", String(ID), nullable=False),
    Column("kind", String(16), nullable=False),  # first_post | update | postmortem
    Column("opened_at", BigInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # pending | met | missed
    Column("met_at", BigInteger),
    Column("reminded_at", BigInteger),
    Column("overdue_at", BigInteger),
    Index("ix_commitments_incident", "incident"),
    Index("ix_commitments_met_at_due_at", "met_at", "due_at"),
)

# Channels created through the API (config channels live in the config file). The URL and the
# signing secret are sealed with the keyring (`enc:v1:…`), bound to the channel id.
channels = Table(
    "channels",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text),
    Column("events", Text, nullable=False),  # JSON list of patterns
    Column("components", Text, nullable=False),  # JSON list
    Column("monitors", Text, nullable=False),  # JSON list
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("signing", String(16)),  # uptally (null) | standard
    Column("previous_secret", Text),  # sealed; signs too while a secret is rotated
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(16), nullable=False),  # email | webhook
    Column("address", String(512), nullable=False),  # lower-cased e-mail, or the webhook URL
    Column("components", Text, nullable=False),  # JSON list; empty: every component
    Column("state", String(16), nullable=False),  # pending | active | unsubscribed
    Column("created_at", BigInteger, nullable=False),
    Column("confirmed_at", BigInteger),
    Column("unsubscribed_at", BigInteger),
    Column("window_start", BigInteger, nullable=False),  # confirmation mails sent in this window
    Column("window_count", Integer, nullable=False),
    Column("signing", String(16)),  # a webhook's: uptally (null, unsigned) | standard
    UniqueConstraint("kind", "address"),
    Index("ix_subscribers_state", "state"),
)

# One delivery per (event, target): its id is X-Uptally-Delivery, the same on every attempt.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("event", String(ID), nullable=False),  # the outbox event (or the delivery itself)
    Column("event_seq", BigInteger, nullable=False),  # order within a target's queue
    Column("target", String(TARGET), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed | suppressed
    Column("attempts", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # when the event was recorded
    Column("delivered_at", BigInteger),
    Column("last_error", Text),
    Column("payload", Text),  # JSON, for deliveries without an outbox event (confirmations)
    UniqueConstraint("event", "target"),
    Index("ix_deliveries_target_state_event_seq", "target", "state", "event_seq"),
    Index("ix_deliveries_created_at", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("seq", sequence(), primary_key=True, autoincrement=True),
    Column("delivery", String(ID), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | transient | permanent
    Column("status", Integer),  # HTTP or SMTP status code, if any
    Column("error", Text),
    Index("ix_delivery_attempts_delivery", "delivery"),
    Index("ix_delivery_attempts_at", "at"),
)

# A target's queue: its backoff gate and which instance delivers it now (a lease).
delivery_queues = Table(
    "delivery_queues",
    metadata,
    Column("target", String(TARGET), primary_key=True),
    Column("next_at", BigInteger, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
    Column("failing_since", BigInteger),
    Column("last_error", Text),
)

# How far a consumer of the outbox got, and sequence numbers seen missing (PostgreSQL assigns
# them before commit, so a smaller one may still appear for a while).
outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("gaps", Text, nullable=False),  # JSON {seq: first seen missing at}
    Column("updated_at", BigInteger, nullable=False),
)
