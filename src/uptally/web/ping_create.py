"""`/ping/<ping_key>/<slug>?create=1`: a missing slug's heartbeat monitor, made as Healthchecks
makes it (named after the slug, period 1 day, grace 1 hour) through the managed-config path."""

from __future__ import annotations

import logging
import re
import secrets

from uptally.config.managed import MONITOR, DocumentInvalid
from uptally.config.schema import ID_PATTERN
from uptally.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "ping-key"  # who the audit log says made it
PERIOD, GRACE = "1d", "1h"  # Healthchecks' defaults for a new check


async def provision(runtime: Runtime, ping_key: str, slug: str) -> tuple[str, bool] | None:
    """(the monitor, whether it was made now) for the slug, None if it cannot be made."""
    monitor_id = slug
    if not re.match(ID_PATTERN, slug) or runtime.config.monitor(slug) is not None:
        monitor_id = f"hc-{slug[:40]}-{secrets.token_hex(3)}"
    document = {
        "id": monitor_id,
        "kind": "heartbeat",
        "name": slug,
        "slug": slug,
        "period": PERIOD,
        "grace": GRACE,
    }
    try:
        change = await runtime.changes.create(MONITOR, document, ACTOR, secrets=False)
    except DocumentInvalid as error:
        found = runtime.heartbeats.by_slug(ping_key, slug)  # made by a ping just before
        if found is None:
            log.warning("cannot make a heartbeat monitor for slug %r: %s", slug, error)
            return None
        return found, False
    made = runtime.heartbeats.by_slug(ping_key, slug)
    return (made, True) if made == change.id else None
