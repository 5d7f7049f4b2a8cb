"""Admin API: notification channels (secrets never shown), deliveries and subscribers.
Channels are made and changed in api_channel_edit.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field

from uptally.clock import iso
from uptally.config.schema import ID_PATTERN, Channel, SecretRef
from uptally.notify.targets import CHANNEL
from uptally.notify.webhook import PREFIX
from uptally.store import channels as channel_store
from uptally.store import deliveries as delivery_store
from uptally.store import subscribers as subscriber_store
from uptally.store.channels import StoredChannel
from uptally.subscribers.service import remove
from uptally.web.auth import principal_of, require_admin, require_scope
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, Model

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
}
router = APIRouter(prefix="/api/v1", responses=_RESPONSES)

ChannelId = Annotated[str, Path(pattern=ID_PATTERN)]
DeliveryId = Annotated[str, Path(pattern=r"^[0-9a-f]{26}$")]


class ChannelIn(Model):
    url: str = Field(
        min_length=1, max_length=2048, description="an Apprise URL or webhook+https://"
    )
    signing: Literal["uptally", "standard"] = Field(
        default="uptally", description="a webhook's: uptally (X-Uptally-*) or standard"
    )
    secret: str | None = Field(default=None, min_length=1, max_length=512)
    previous_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="while rotating: deliveries carry a signature under it too until removed",
    )
    events: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["monitor.*", "incident.*"], max_length=50
    )
    components: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    monitors: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)


class ChannelStats(Model):
    pending: int
    failing_since: str | None
    last_error: str | None


class ChannelOut(Model):
    id: str
    source: Literal["config", "api"]
    kind: Literal["webhook", "apprise"] | None  # None: the URL is in the secret store
    scheme: str | None  # e.g. slack, discord, https: never the URL (it may hold credentials)
    url_set: bool
    signing: Literal["uptally", "standard"]
    secret_set: bool
    previous_secret_set: bool
    events: list[str]
    components: list[str]
    monitors: list[str]
    stats: ChannelStats


class ChannelList(Model):
    channels: list[ChannelOut]


class AttemptOut(Model):
    at: str
    duration_ms: float
    outcome: Literal["delivered", "transient", "permanent"]
    status: int | None
    error: str | None


class DeliveryOut(Model):
    id: str
    event: str
    target: str
    kind: str
    state: Literal["pending", "delivered", "failed", "suppressed"]
    attempts: int
    created_at: str
    delivered_at: str | None
    last_error: str | None
    history: list[AttemptOut] | None = None


class DeliveryList(Model):
    deliveries: list[DeliveryOut]


class SubscriberOut(Model):
    id: str
    kind: Literal["email", "webhook"]
    address: str
    components: list[str]
    state: Literal["pending", "active", "unsubscribed"]
    created_at: str
    confirmed_at: str | None
    unsubscribed_at: str | None


class SubscriberList(Model):
    subscribers: list[SubscriberOut]
    counts: dict[str, dict[str, int]]


def scheme_of(url: str | SecretRef) -> tuple[str | None, str | None]:
    if isinstance(url, SecretRef):
        return None, None
    scheme = url.split("://", 1)[0].lower()
    if scheme.startswith(PREFIX):
        return "webhook", scheme.removeprefix(PREFIX)
    return "apprise", scheme


async def _stats(request: Request, channel_id: str) -> ChannelStats:
    target = CHANNEL + channel_id
    async with runtime_of(request).db.connect() as conn:
        pending = await delivery_store.count_pending(conn, target)
        failing_since, last_error = await delivery_store.queue_state(conn, target)
    return ChannelStats(pending=pending, failing_since=iso(failing_since), last_error=last_error)


async def channel_out(
    request: Request,
    channel: Channel | StoredChannel,
    source: Literal["config", "api"],
    kind_scheme: tuple[str | None, str | None],
    secret_set: bool,
) -> ChannelOut:
    """A channel as the API shows it: whether a URL or secret is set, never them."""
    kind, scheme = kind_scheme
    return ChannelOut(
        id=channel.id,
        source=source,
        kind=kind,
        scheme=scheme,
        url_set=True,
        signing="standard" if channel.signing == "standard" else "uptally",
        secret_set=secret_set,
        previous_secret_set=channel.previous_secret is not None,
        events=channel.events,
        components=channel.components,
        monitors=channel.monitors,
        stats=await _stats(request, channel.id),
    )


@router.get(
    "/channels",
    response_model=ChannelList,
    tags=["channels"],
    dependencies=[Depends(require_admin)],
)
async def list_channels(request: Request) -> ChannelList:
    """Channels from the config file and the API; whether a URL or secret is set, never them."""
    runtime = runtime_of(request)
    configured = runtime.config.notifications.channels
    found = [
        await channel_out(request, c, "config", scheme_of(c.url), c.secret is not None)
        for c in configured
    ]
    async with runtime.db.connect() as conn:
        stored = await channel_store.load_channels(conn)
    ids = {c.id for c in configured}
    found += [
        await channel_out(request, c, "api", stored_scheme(request, c), c.secret is not None)
        for c in stored
        if c.id not in ids
    ]
    return ChannelList(channels=found)


def stored_scheme(request: Request, item: StoredChannel) -> tuple[str | None, str | None]:
    keyring = runtime_of(request).keyring
    if keyring is None:
        return None, None
    try:
        url, _ = item.opened(keyring)
    except Exception:
        return None, None
    return scheme_of(url)


def _delivery_out(row: delivery_store.DeliveryRow) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event=row.event,
        target=row.target,
        kind=row.kind,
        state=row.state,
        attempts=row.attempts,
        created_at=iso(row.created_at) or "",
        delivered_at=iso(row.delivered_at),
        last_error=row.last_error,
    )


@router.get(
    "/deliveries",
    response_model=DeliveryList,
    tags=["channels"],
    dependencies=[Depends(require_admin)],
)
async def list_deliveries(
    request: Request,
    channel: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    target: Annotated[
        str | None, Query(pattern=r"^(channel|subscriber):[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    ] = None,
    state: Literal["pending", "delivered", "failed", "suppressed"] | None = None,
    event: Annotated[str | None, Query(pattern=r"^[0-9a-f]{26}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """Deliveries newest first, by channel (or any target), state or event."""
    if channel is not None:
        target = CHANNEL + channel
    async with runtime_of(request).db.connect() as conn:
        rows = await delivery_store.list_deliveries(
            conn, target=target, state=state, event=event, limit=limit
        )
    return DeliveryList(deliveries=[_delivery_out(r) for r in rows])


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    tags=["channels"],
    dependencies=[Depends(require_admin)],
)
async def get_delivery(request: Request, delivery_id: DeliveryId) -> DeliveryOut:
    """One delivery with every attempt."""
    async with runtime_of(request).db.connect() as conn:
        rows = await delivery_store.list_deliveries(conn, limit=1, delivery=delivery_id)
        if not rows:
            raise ApiError(404, f"no delivery {delivery_id!r}")
        attempts = await delivery_store.list_attempts(conn, delivery_id)
    out = _delivery_out(rows[0])
    out.history = [
        AttemptOut(
            at=iso(a.at) or "",
            duration_ms=a.duration_ms,
            outcome=a.outcome,
            status=a.status,
            error=a.error,
        )
        for a in attempts
    ]
    return out


@router.get(
    "/subscribers",
    response_model=SubscriberList,
    tags=["subscribers"],
    dependencies=[Depends(require_scope("admin"))],
)
async def list_subscribers(
    request: Request,
    state: Literal["pending", "active", "unsubscribed"] | None = None,
    after: Annotated[str | None, Query(pattern=r"^[0-9a-f]{26}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubscriberList:
    """Subscribers (their addresses are personal data: admin scope), and counts."""
    async with runtime_of(request).db.connect() as conn:
        found = await subscriber_store.listing(conn, state=state, after=after, limit=limit)
        counts = await subscriber_store.counts(conn)
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, kept), count in counts.items():
        by_kind.setdefault(kind, {})[kept] = count
    return SubscriberList(
        subscribers=[
            SubscriberOut(
                id=s.id,
                kind=s.kind,
                address=s.address,
                components=s.components,
                state=s.state,
                created_at=iso(s.created_at) or "",
                confirmed_at=iso(s.confirmed_at),
                unsubscribed_at=iso(s.unsubscribed_at),
            )
            for s in found
        ],
        counts=by_kind,
    )


@router.delete(
    "/subscribers/{subscriber_id}",
    status_code=204,
    tags=["subscribers"],
    dependencies=[Depends(require_scope("admin"))],
)
async def delete_subscriber(
    request: Request, subscriber_id: Annotated[str, Path(pattern=r"^[0-9a-f]{26}$")]
) -> None:
    """Unsubscribe someone (their pending deliveries are given up): admin scope, like the
    list of subscribers."""
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        found = await subscriber_store.get(conn, subscriber_id)
        if found is None:
            raise ApiError(404, f"no subscriber {subscriber_id!r}")
        await remove(conn, found, principal_of(request).actor, runtime.clock.now_ms())
