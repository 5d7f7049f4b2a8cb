"""The configuration schema (pydantic): what a valid uptally YAML file contains."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from fnmatch import fnmatchcase
from functools import partial
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    field_validator,
    model_validator,
)

from uptally.conditions import Capture, Condition, ConditionError, parse_capture, parse_condition
from uptally.durations import parse_duration_ms, parse_size
from uptally.events import EventKind

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
TOKEN_PATTERN = r"^[A-Za-z0-9_\-]{8,128}$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

HTTP_ROOTS = frozenset({"status", "latency", "body", "json", "header", "cert"})
TCP_ROOTS = frozenset({"reply", "latency", "cert"})
JSONRPC_ROOTS = frozenset(
    {"result", "error", "json", "status", "header", "body", "latency", "cert"}
)
DNS_ROOTS = frozenset({"answers", "rcode", "latency"})
METRIC_ROOTS = frozenset({"value", "latency"})


# Values serialise back to what the config language reads (for agents, see `monitor_document`).
_AS_MS = PlainSerializer(lambda ms: f"{ms}ms", return_type=str, when_used="json")
_AS_TEXT = PlainSerializer(lambda item: item.text, return_type=str, when_used="json")
Duration = Annotated[int, BeforeValidator(parse_duration_ms), _AS_MS]  # milliseconds
Size = Annotated[int, BeforeValidator(parse_size)]  # bytes
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
VariableName = Annotated[str, Field(pattern=VARIABLE_PATTERN)]  # what ${name} can refer to
HttpCondition = Annotated[
    Condition, BeforeValidator(partial(parse_condition, roots=HTTP_ROOTS)), _AS_TEXT
]
TcpCondition = Annotated[
    Condition, BeforeValidator(partial(parse_condition, roots=TCP_ROOTS)), _AS_TEXT
]
JsonRpcCondition = Annotated[
    Condition, BeforeValidator(partial(parse_condition, roots=JSONRPC_ROOTS)), _AS_TEXT
]
DnsCondition = Annotated[
    Condition, BeforeValidator(partial(parse_condition, roots=DNS_ROOTS)), _AS_TEXT
]
MetricCondition = Annotated[
    Condition, BeforeValidator(partial(parse_condition, roots=METRIC_ROOTS)), _AS_TEXT
]
HttpCapture = Annotated[
    Capture, BeforeValidator(partial(parse_capture, roots=HTTP_ROOTS)), _AS_TEXT
]
TcpCapture = Annotated[Capture, BeforeValidator(partial(parse_capture, roots=TCP_ROOTS)), _AS_TEXT]
JsonRpcCapture = Annotated[
    Capture, BeforeValidator(partial(parse_capture, roots=JSONRPC_ROOTS)), _AS_TEXT
]
DnsCapture = Annotated[Capture, BeforeValidator(partial(parse_capture, roots=DNS_ROOTS)), _AS_TEXT]


def check_http_url(url: str) -> str:
    """An http(s) URL naming a host; in scenario steps it may start with a ${variable}."""
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        raise ValueError(f"url must not contain spaces or control characters: {url!r}")
    prefix = url.split("${", 1)[0]
    if "${" in url and (prefix == "" or re.match(r"^https?://", prefix, re.IGNORECASE)):
        return url
    if not re.match(r"^https?://[^/?#]+", url, re.IGNORECASE):
        raise ValueError(f"url must start with http:// or https:// and name a host: {url!r}")
    return url


def check_header_name(name: str) -> str:
    """A header name is an HTTP token: no spaces, colons or line breaks."""
    if not _HEADER_NAME_RE.match(name):
        raise ValueError(f"invalid header name {name!r}: use letters, digits and - only")
    return name


def check_header_value(value: str) -> str:
    """A header value must not break the request (CR, LF, NUL and other controls; tab is fine)."""
    if _CONTROL_RE.search(value.replace("\t", "")):
        raise ValueError(
            f"a header value must not contain line breaks or control characters: {value!r}"
        )
    return value


def check_json_path(path: str | None) -> str | None:
    """A metric's `path` is a capture rooted at json, e.g. json.data.rate or json.items[0].v."""
    if path is None:
        return None
    try:
        parse_capture(path, roots={"json"})
    except ConditionError as error:
        raise ValueError(f"path must be a JSON path such as json.data.rate: {error}") from None
    return path


Headers = dict[
    Annotated[str, AfterValidator(check_header_name)],
    Annotated[str, AfterValidator(check_header_value)],
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quorum(Strict):
    quorum: int = Field(ge=1)


Consensus = Literal["all", "any"] | Quorum


# -- what a check does (shared by monitors and scenario steps) -------------------------------


class HttpRequest(Strict):
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    follow_redirects: bool = True
    max_redirects: int = Field(default=5, ge=0, le=30)
    verify_tls: bool = True
    max_body: Size = 1 << 20

    _url = field_validator("url")(staticmethod(check_http_url))

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either body or json, not both")
        return self


class TcpExchange(Strict):
    send: str | None = None
    expect: list[TcpCondition] = Field(default_factory=list)
    capture: dict[VariableName, TcpCapture] = Field(default_factory=dict)


class TcpRequest(Strict):
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    verify_tls: bool = True
    server_name: str | None = None
    send: str | None = None
    max_reply: Size = 64 << 10
    conversation: list[TcpExchange] = Field(default_factory=list)


class JsonRpcRequest(Strict):
    url: str
    method: str = Field(min_length=1)
    params: dict[str, Any] | list[Any] | None = None
    headers: Headers = Field(default_factory=dict)
    verify_tls: bool = True
    max_body: Size = 1 << 20

    _url = field_validator("url")(staticmethod(check_http_url))


class DnsRequest(Strict):
    host: str = Field(min_length=1)
    record: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR"] = "A"
    server: str | None = None  # "1.1.1.1" or "127.0.0.1:5353"; default: the system resolver
    protocol: Literal["udp", "tcp"] = "udp"

    @field_validator("server")
    @classmethod
    def _server_address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, port = value, "53"
        if value.startswith("["):
            host, _, rest = value[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif value.count(":") == 1:
            host, port = value.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            example = "1.1.1.1:53"
            shape = f"an IP address, optionally with :port (e.g. {example})"
            raise ValueError(f"server must be {shape}, not {value!r}") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid port in server {value!r}")
        return value


class MetricRequest(Strict):
    source: Literal["prometheus", "json"]
    url: str
    query: str | None = None  # PromQL, for source prometheus
    path: str | None = None  # e.g. json.data.rate, for source json
    headers: Headers = Field(default_factory=dict)
    verify_tls: bool = True

    _url = field_validator("url")(staticmethod(check_http_url))
    _path = field_validator("path")(staticmethod(check_json_path))

    @model_validator(mode="after")
    def _source_fields(self) -> MetricRequest:
        if self.source == "prometheus" and not self.query:
            raise ValueError("a prometheus metric needs query: <PromQL>")
        if self.source == "json" and not self.path:
            raise ValueError("a json metric needs path: json.<field>")
        if self.source == "prometheus" and self.path is not None:
            raise ValueError("path is for source json; a prometheus metric uses query")
        if self.source == "json" and self.query is not None:
            raise ValueError("query is for source prometheus; a json metric uses path")
        return self


# -- monitors ----------------------------------------------------------------------------------


class MonitorBase(Strict):
    id: Identifier
    name: str | None = None
    description: str | None = None
    enabled: bool = True

    @property
    def title(self) -> str:
        return self.name or self.id


class ActiveMonitor(MonitorBase):
    interval: Duration = 60_000
    retry_interval: Duration = 10_000
    timeout: Duration = 10_000
    confirm: int = Field(default=2, ge=1, le=100)
    locations: list[Identifier] = Field(default_factory=lambda: ["local"], min_length=1)
    consensus: Consensus = "all"

    @field_validator("interval", "retry_interval", "timeout")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 100:
            raise ValueError("must be at least 100ms")
        return value

    @property
    def required_locations(self) -> int:
        """How many locations must see it down for the downtime to be verified."""
        if self.consensus == "all":
            return len(self.locations)
        if self.consensus == "any":
            return 1
        assert isinstance(self.consensus, Quorum)
        return self.consensus.quorum


class HttpMonitor(ActiveMonitor, HttpRequest):
    kind: Literal["http"]
    expect: list[HttpCondition] = Field(default_factory=list)


class TcpMonitor(ActiveMonitor, TcpRequest):
    kind: Literal["tcp"]
    expect: list[TcpCondition] = Field(default_factory=list)


class JsonRpcMonitor(ActiveMonitor, JsonRpcRequest):
    kind: Literal["jsonrpc"]
    expect: list[JsonRpcCondition] = Field(default_factory=list)


class DnsMonitor(ActiveMonitor, DnsRequest):
    kind: Literal["dns"]
    expect: list[DnsCondition] = Field(default_factory=list)


class MetricMonitor(ActiveMonitor, MetricRequest):
    kind: Literal["metric"]
    expect: list[MetricCondition] = Field(min_length=1)


class StepBase(Strict):
    name: str | None = None
    timeout: Duration | None = None


class HttpStep(StepBase, HttpRequest):
    kind: Literal["http"]
    expect: list[HttpCondition] = Field(default_factory=list)
    capture: dict[VariableName, HttpCapture] = Field(default_factory=dict)


class TcpStep(StepBase, TcpRequest):
    kind: Literal["tcp"]
    expect: list[TcpCondition] = Field(default_factory=list)
    capture: dict[VariableName, TcpCapture] = Field(default_factory=dict)


class JsonRpcStep(StepBase, JsonRpcRequest):
    kind: Literal["jsonrpc"]
    expect: list[JsonRpcCondition] = Field(default_factory=list)
    capture: dict[VariableName, JsonRpcCapture] = Field(default_factory=dict)


class DnsStep(StepBase, DnsRequest):
    kind: Literal["dns"]
    expect: list[DnsCondition] = Field(default_factory=list)
    capture: dict[VariableName, DnsCapture] = Field(default_factory=dict)


Step = Annotated[HttpStep | TcpStep | JsonRpcStep | DnsStep, Field(discriminator="kind")]


class ScenarioMonitor(ActiveMonitor):
    kind: Literal["scenario"]
    timeout: Duration = 30_000  # the one deadline for all steps
    steps: list[Step] = Field(min_length=1)


class HeartbeatMonitor(MonitorBase):
    kind: Literal["heartbeat"]
    period: Duration | None = None
    schedule: str | None = None  # cron, in the site timezone
    grace: Duration | None = None  # default: the period, at most 1h
    token: str | None = Field(default=None, pattern=TOKEN_PATTERN)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value

    @model_validator(mode="after")
    def _period_or_schedule(self) -> HeartbeatMonitor:
        if (self.period is None) == (self.schedule is None):
            raise ValueError("a heartbeat needs exactly one of period or schedule")
        if self.period is not None and self.period < 1000:
            raise ValueError("period must be at least 1s")
        return self

    @property
    def grace_ms(self) -> int:
        if self.grace is not None:
            return self.grace
        return min(self.period or 3_600_000, 3_600_000)


Monitor = Annotated[
    HttpMonitor
    | TcpMonitor
    | JsonRpcMonitor
    | DnsMonitor
    | ScenarioMonitor
    | HeartbeatMonitor
    | MetricMonitor,
    Field(discriminator="kind"),
]
MONITOR_KINDS = ("http", "tcp", "jsonrpc", "dns", "scenario", "heartbeat", "metric")


# -- everything else -----------------------------------------------------------------------------


class Site(Strict):
    title: str = "Status"
    description: str | None = None
    timezone: str = "UTC"
    url: str | None = None  # public base URL, used in links and ping URLs
    logo: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/") if value else value


class Location(Strict):
    """A remote probe agent's location; the agent authenticates with the token in `token_env`."""

    name: Identifier
    token_env: str | None = None
    # Targets the agent checks to know that its own network works (besides the hub itself):
    # http(s)://… (any HTTP answer counts) or tcp://host:port.
    canaries: list[str] = Field(default_factory=list)

    @field_validator("canaries")
    @classmethod
    def _canary_targets(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^(https?://[^\s/?#]+\S*|tcp://[^\s:/]+:\d{1,5})$", value):
                raise ValueError(f"a canary is http(s)://host/… or tcp://host:port, not {value!r}")
        return values

    @field_validator("name")
    @classmethod
    def _not_local(cls, value: str) -> str:
        if value == "local":
            raise ValueError("'local' is the embedded probe and always exists; do not declare it")
        return value


class Component(Strict):
    id: Identifier
    name: str | None = None
    description: str | None = None
    group: str | None = None
    monitors: list[Identifier] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.name or self.id


class MaintenanceWindow(Strict):
    id: Identifier | None = None
    title: str
    start: datetime
    end: datetime
    components: list[Identifier] = Field(default_factory=list)
    monitors: list[Identifier] = Field(default_factory=list)
    message: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class CreditTier(Strict):
    below: float = Field(gt=0, le=100)
    credit: float = Field(ge=0, le=100)


class SlaPolicy(Strict):
    id: Identifier
    target: float = Field(gt=0, le=100)
    period: Literal["month", "quarter"] = "month"
    components: list[Identifier] = Field(default_factory=list)
    credits: list[CreditTier] = Field(default_factory=list)


class Sla(Strict):
    policies: list[SlaPolicy] = Field(default_factory=list)


class Channel(Strict):
    id: Identifier
    url: str = Field(min_length=1)
    secret: str | None = None
    events: list[str] = Field(default_factory=lambda: ["monitor.*", "incident.*"])
    components: list[Identifier] = Field(default_factory=list)
    monitors: list[Identifier] = Field(default_factory=list)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        for pattern in events:
            if not any(fnmatchcase(kind.value, pattern) for kind in EventKind):
                known = ", ".join(kind.value for kind in EventKind)
                raise ValueError(f"unknown event {pattern!r}; events are {known} (or glob: x.*)")
        return events

    @model_validator(mode="after")
    def _secret_for_webhooks(self) -> Channel:
        if self.secret is not None and not self.url.lower().startswith("webhook+"):
            raise ValueError("only a webhook+http(s):// channel can have a secret")
        return self


class Notifications(Strict):
    channels: list[Channel] = Field(default_factory=list)


class Probe(Strict):
    """The embedded probe (location `local`) and how the hub treats remote probe agents."""

    concurrency: int = Field(default=500, ge=1, le=100_000)
    enabled: bool = True
    offline_after: Duration = 120_000  # a location silent this long is offline
    max_clock_skew: Duration = 5_000  # agents' clocks further off than this are …
    clock_skew: Literal["correct", "reject"] = "correct"  # … corrected, or their results refused


class Retention(Strict):
    results: Duration = 30 * 86_400_000
    pings: Duration = 30 * 86_400_000


class BackupKeep(Strict):
    """Retention of backups: the newest one of each of the last N days, weeks and months."""

    daily: int = Field(default=7, ge=0, le=3660)
    weekly: int = Field(default=4, ge=0, le=520)
    monthly: int = Field(default=12, ge=0, le=1200)


class Backup(Strict):
    """Scheduled backups by `serve` (off unless `dir` is set); see docs/trust.md."""

    dir: str | None = None
    every: Duration = 86_400_000
    keep: BackupKeep = Field(default_factory=BackupKeep)
    encrypt: bool = False  # needs UPTALLY_SECRET_KEY
    monitor: Identifier = "uptally-backup"  # heartbeat pinged after each successful backup
    grace: Duration = 3_600_000

    @field_validator("every")
    @classmethod
    def _sensible_interval(cls, value: int) -> int:
        if value < 60_000:
            raise ValueError("backups can run at most every minute (every >= 1m)")
        return value


class DisasterRecovery(Strict):
    """Recovery objectives that `uptally dr drill` checks."""

    rto: Duration = 4 * 3_600_000
    rpo: Duration = 24 * 3_600_000


class Security(Strict):
    ssrf_guard: bool = False  # refuse private targets for monitors created through the API
    max_body: Size = 8 << 20  # largest accepted API request body (agents send batches)
    auth_failures: int = Field(default=10, ge=1, le=10_000)  # per client address and window
    auth_window: Duration = 60_000


class Config(Strict):
    site: Site = Field(default_factory=Site)
    locations: list[Location] = Field(default_factory=list)
    monitors: list[Monitor] = Field(default_factory=list)
    components: list[Component] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    sla: Sla = Field(default_factory=Sla)
    notifications: Notifications = Field(default_factory=Notifications)
    probe: Probe = Field(default_factory=Probe)
    retention: Retention = Field(default_factory=Retention)
    backup: Backup = Field(default_factory=Backup)
    dr: DisasterRecovery = Field(default_factory=DisasterRecovery)
    security: Security = Field(default_factory=Security)

    @model_validator(mode="after")
    def _backup_monitor_is_a_heartbeat(self) -> Config:
        if self.backup.dir is not None:
            found = self.monitor(self.backup.monitor)
            if found is not None and found.kind != "heartbeat":
                raise ValueError(
                    f"backup.monitor {self.backup.monitor!r} must be a heartbeat monitor"
                )
        return self

    def monitor(self, monitor_id: str) -> Monitor | None:
        return next((m for m in self.monitors if m.id == monitor_id), None)

    @property
    def location_names(self) -> list[str]:
        return ["local", *(loc.name for loc in self.locations)]


_MONITOR = TypeAdapter(Monitor)


def monitor_document(monitor: BaseModel) -> dict[str, Any]:
    """A monitor as config data again (what agents receive); `monitor_from_document` reads it."""
    document: dict[str, Any] = monitor.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return document


def monitor_from_document(document: Any) -> Monitor:
    return _MONITOR.validate_python(document)
