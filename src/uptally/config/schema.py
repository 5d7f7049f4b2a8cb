"""The configuration schema (pydantic): what a valid uptally YAML file contains."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from uptally.conditions import Capture, Condition, ConditionError, parse_capture, parse_condition
from uptally.config.console import Console
from uptally.durations import parse_duration_ms, parse_size
from uptally.events import EventKind
from uptally.netguard import Guard, allowance
from uptally.signing import Scheme, check_secret

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
TOKEN_PATTERN = r"^[A-Za-z0-9_\-]{8,128}$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TAG_PATTERN = r"^[A-Za-z0-9_.:/\-]{1,64}$"
TAG_RULE = "a tag is 1 to 64 letters, digits, '_', '.', '-', ':' or '/'"
MAX_TAGS = 50
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
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
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
    # "1.1.1.1", "127.0.0.1:5353" or a host name ("ns1.example.com:53", looked up at each
    # check by the system resolver); default: the system resolver
    server: str | None = None
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
        if not _is_ip(host) and not _DNS_SERVER_NAME.fullmatch(host):
            example = "1.1.1.1:53 or ns1.example.com"
            shape = f"an IP address or a host name, optionally with :port (e.g. {example})"
            raise ValueError(f"server must be {shape}, not {value!r}")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid port in server {value!r}")
        return value


_DNS_SERVER_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class MetricRequest(Strict):
    source: Literal["prometheus", "json"]
    url: str
    query: str | None = None  # PromQL, for source prometheus
    path: str | None = None  # e.g. json.data.rate, for source json
    # how to make one number of a query that returns several series (else it is an error)
    combine: Literal["min", "max", "sum", "avg"] | None = None
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
        if self.source == "json" and self.combine is not None:
            raise ValueError("combine is for source prometheus (a json path names one value)")
        return self


# -- monitors ----------------------------------------------------------------------------------


class LatencySlo(Strict):
    """Latency objectives, judged per SLA period from hourly histograms (±4.4 %)."""

    latency_p50: Duration | None = None
    latency_p95: Duration | None = None
    latency_p99: Duration | None = None

    @model_validator(mode="after")
    def _some_target(self) -> LatencySlo:
        if self.latency_p50 is None and self.latency_p95 is None and self.latency_p99 is None:
            raise ValueError("give at least one of latency_p50, latency_p95, latency_p99")
        return self

    def targets(self) -> dict[str, int]:
        """{"p50": ms, …} of the objectives that are set."""
        pairs = (("p50", self.latency_p50), ("p95", self.latency_p95), ("p99", self.latency_p99))
        return {name: ms for name, ms in pairs if ms is not None}


def _distinct_tags(tags: list[str]) -> list[str]:
    """Refuse a tag given twice, naming the second one (its line, in a file)."""
    seen: set[str] = set()
    for position, tag in enumerate(tags):
        if tag in seen:
            first = tags.index(tag)
            raise ValidationError.from_exception_data(
                "tags",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "value_error", f"duplicate tag {tag!r} (already tags[{first}])"
                        ),
                        loc=(position,),
                        input=tag,
                    )
                ],
            )
        seen.add(tag)
    return tags


class MonitorBase(Strict):
    id: Identifier
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    # Free labels to find monitors by (the API's `tag` filter); nothing else reads them.
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_distinct_tags)] = Field(
        default_factory=list
    )
    slo: LatencySlo | None = None  # latency objectives (SLA ledger)
    # When measured time begins (naive: site timezone); default: the monitor's first result.
    monitoring_started: datetime | None = None

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
    uuid: UUID | None = None  # Healthchecks-style address: /ping/<uuid>
    # /ping/<ping_key>/<slug>
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,100}$")
    tz: str | None = None  # the schedule's timezone (default: the site's)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r} (an IANA name)") from None
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


# A Prometheus label name (Alertmanager's alert labels).
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class ExternalMonitor(MonitorBase):
    """Driven from outside (Alertmanager's webhook), never probed: a matching alert firing is
    down from its start time, resolved is up from its end time."""

    kind: Literal["external"]
    # Exact label matchers: every one must equal the alert's label of that name.
    match: dict[Annotated[str, Field(pattern=LABEL_NAME)], str] = Field(min_length=1)


Monitor = Annotated[
    HttpMonitor
    | TcpMonitor
    | JsonRpcMonitor
    | DnsMonitor
    | ScenarioMonitor
    | HeartbeatMonitor
    | MetricMonitor
    | ExternalMonitor,
    Field(discriminator="kind"),
]
MONITOR_KINDS = ("http", "tcp", "jsonrpc", "dns", "scenario", "heartbeat", "metric", "external")


# -- everything else -----------------------------------------------------------------------------


# A host name, IPv4 address or (bracketed or not) IPv6 address, without a port.
HOST_NAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]{2,45}\]?"
)


class Site(Strict):
    title: str = "Status"
    description: str | None = None
    timezone: str = "UTC"
    url: str | None = None  # public base URL, used in links and ping URLs
    # Without `url`: Host names whose requests get links on their own host (that answer only);
    # None: localhost names, the listen host and url's host. "*" allows any (behind a proxy
    # that checks Host itself).
    allowed_hosts: list[str] | None = None
    logo: str | None = None  # URL or path of an image shown beside the title
    # Statuspage v2 leaves `maintenance` out of its documented indicators and some clients
    # break on it: by default maintenance reads as indicator `minor` with a description.
    maintenance_indicator: bool = False
    # Maintenance announced less than this before it starts is flagged `short_notice`, or
    # refused by the API with `short_notice: refuse`.
    maintenance_notice: Duration = 86_400_000
    short_notice: Literal["flag", "refuse"] = "flag"
    # Public holidays of this country (ISO 3166 code) are not business days (postmortem dues).
    country: str | None = None
    subdivision: str | None = None  # e.g. BY for Bavaria, with country DE

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        import holidays

        if value is not None and value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"unknown country {value!r} (use an ISO 3166 code such as DE)")
        return value.upper() if value else value

    @model_validator(mode="after")
    def _subdivision(self) -> Site:
        import holidays

        if self.subdivision is not None:
            if self.country is None:
                raise ValueError("subdivision needs country")
            known = holidays.list_supported_countries()[self.country]
            if self.subdivision not in known:
                raise ValueError(
                    f"unknown subdivision {self.subdivision!r} of {self.country} "
                    f"(known: {', '.join(known[:20])}…)"
                )
        return self

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

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        for value in values:
            if value != "*" and not HOST_NAME.fullmatch(value):
                raise ValueError(f"allowed_hosts: not a host name or address: {value!r}")
        return [value.lower().strip("[]") for value in values]

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/") if value else value


_CANARY = re.compile(
    r"^(https?://[^\s/?#]+\S*"  # any HTTP answer counts
    r"|tcp://([^\s:/\[\]]+|\[[0-9A-Fa-f:.]+\]):\d{1,5})$"  # an accepted connection counts
)


def canary_target(value: str) -> str:
    """A canary target as given, or ValueError saying what one looks like."""
    if not _CANARY.match(value):
        raise ValueError(
            f"a canary is http(s)://host/…, tcp://host:port or tcp://[v6]:port, not {value!r}"
        )
    return value


_TOKEN_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class Location(Strict):
    """A remote probe agent's location; the agent authenticates with the token in `token_env`,
    or (a location made through the API) with the token whose SHA-256 is `token_hash`."""

    name: Identifier
    token_env: str | None = None
    token_hash: str | None = None  # hex; set by uptally when the API makes the location
    # Targets the agent checks to know that its own network works, independent of the hub:
    # http(s)://… (any HTTP answer counts) or tcp://host:port. None: the agent's built-in
    # defaults (see docs/locations.md); []: no canary check at all.
    canaries: list[str] | None = None

    @field_validator("canaries")
    @classmethod
    def _canary_targets(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [canary_target(value) for value in values]

    @field_validator("name")
    @classmethod
    def _not_local(cls, value: str) -> str:
        if value == "local":
            raise ValueError("'local' is the embedded probe and always exists; do not declare it")
        return value

    @field_validator("token_hash")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not _TOKEN_HASH_RE.match(value):
            raise ValueError("token_hash is the SHA-256 of the token: 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> Location:
        if self.token_env is not None and self.token_hash is not None:
            raise ValueError("give token_env or token_hash, not both")
        return self


class Component(Strict):
    id: Identifier
    name: str | None = None
    description: str | None = None
    group: str | None = None
    monitors: list[Identifier] = Field(default_factory=list)
    slo: LatencySlo | None = None  # latency objectives over all its monitors (SLA ledger)

    @property
    def title(self) -> str:
        return self.name or self.id


# Top-level paths of the web application itself (web/app.py): no status page can take them.
RESERVED_PATHS = frozenset(
    {
        "api",
        "badge",
        "console",
        "docs",
        "favicon.ico",
        "feed.atom",
        "feed.rss",
        "healthz",
        "history",
        "incidents",
        "maintenance",
        "metrics",
        "openapi.json",
        "ping",
        "readyz",
        "redoc",
        "static",
        "subscribe",
    }
)
_PAGE_PATH_RE = re.compile(r"^/[a-z0-9][a-z0-9\-]{0,63}$")


class StatusPage(Strict):
    """One more status page from the same data: some components, under a path of its own."""

    id: Identifier  # also names the token scope page:<id> of a private page
    path: str  # "/internal": the page, its history, v2 JSON, feeds and badges live below it
    title: str = Field(min_length=1, max_length=200)
    description: str | None = None  # default: the site's
    logo: str | None = None  # default: the site's
    components: list[Identifier]
    private: bool = False  # every request needs a token with scope page:<id> (or read)

    @field_validator("components")
    @classmethod
    def _some_components(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a status page shows at least one component")
        return value

    @field_validator("path")
    @classmethod
    def _one_free_segment(cls, value: str) -> str:
        if not _PAGE_PATH_RE.match(value):
            raise ValueError(
                f"path {value!r} must be one segment of lowercase letters, digits and '-' "
                "after a slash, such as /internal"
            )
        if value[1:] in RESERVED_PATHS:
            raise ValueError(
                f"path {value!r} is taken by uptally itself (reserved: "
                + ", ".join("/" + name for name in sorted(RESERVED_PATHS))
                + ")"
            )
        return value


class MaintenanceWindow(Strict):
    """A maintenance window: one-off (start, end) or recurring (rrule or cron, and duration).

    Naive times are in the site timezone; recurrences expand in wall-clock time there (DST-correct).
    """

    id: Identifier | None = None  # default: derived from title and start
    title: str = Field(min_length=1, max_length=200)
    start: datetime | None = None  # one-off: required; rrule: the first occurrence (DTSTART)
    end: datetime | None = None  # one-off only
    rrule: str | None = None  # RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU
    cron: str | None = None  # e.g. "0 3 * * SUN"
    duration: Duration | None = None  # recurring only: how long each occurrence lasts
    until: datetime | None = None  # recurring only: no occurrence starts at or after this
    # Neither components nor monitors: the window covers every component and monitor.
    components: list[Identifier] = Field(default_factory=list)
    monitors: list[Identifier] = Field(default_factory=list)
    message: str | None = Field(default=None, max_length=10_000)

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from dateutil.rrule import rrulestr

        text = value.strip().removeprefix("RRULE:")
        if not text or "DTSTART" in text.upper() or "\n" in text:
            raise ValueError(
                "rrule is one RRULE line such as FREQ=WEEKLY;BYDAY=SU (start: gives DTSTART)"
            )
        if re.search(r"FREQ=(SECONDLY|MINUTELY)", text.upper()):
            raise ValueError("maintenance recurs at most hourly (FREQ=HOURLY or less often)")
        try:
            # A UTC UNTIL (…Z) is read in the site timezone when expanded; check it as local.
            local = re.sub(r"(UNTIL=\d{8}(T\d{6})?)Z", r"\1", text, flags=re.IGNORECASE)
            rrulestr(local, dtstart=datetime(2026, 1, 1))
        except (ValueError, TypeError) as error:
            raise ValueError(f"invalid rrule {value!r}: {error}") from None
        return text

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value

    @property
    def recurring(self) -> bool:
        return self.rrule is not None or self.cron is not None

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        if self.rrule is not None and self.cron is not None:
            raise ValueError("give rrule or cron, not both")
        if not self.recurring:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs start and end (or rrule/cron + duration)")
            if self.duration is not None or self.until is not None:
                raise ValueError("duration and until are for recurring windows (rrule or cron)")
            if _naive(self.end) <= _naive(self.start):
                raise ValueError("end must be after start")
            return self
        if self.end is not None:
            raise ValueError("a recurring window has duration, not end")
        if self.duration is None or self.duration < 60_000:
            raise ValueError("a recurring window needs a duration of at least 1m")
        if self.rrule is not None and self.start is None:
            raise ValueError("an rrule window needs start (its first occurrence, DTSTART)")
        if self.id is None:
            raise ValueError("a recurring window needs an id")
        if len(self.id) > 48:
            raise ValueError("the id of a recurring window has at most 48 characters")
        return self


def _naive(value: datetime) -> datetime:
    """Comparable whatever the zones: aware times in UTC, naive ones as they are."""
    return value.astimezone(ZoneInfo("UTC")).replace(tzinfo=None) if value.tzinfo else value


class CreditTier(Strict):
    below: float = Field(gt=0, le=100)
    credit: float = Field(ge=0, le=100)


class SlaPolicy(Strict):
    id: Identifier
    target: float = Field(gt=0, le=100)
    period: Literal["month", "quarter"] = "month"
    components: list[Identifier] = Field(default_factory=list)  # empty: every component
    credits: list[CreditTier] = Field(default_factory=list)
    count_maintenance: bool = False  # maintenance counts as time (and its downtime as downtime)
    degraded_weight: float = Field(default=0, ge=0, le=1)  # unverified downtime counts this much
    burn_alerts: bool = True  # raise sla.burn_rate and sla.breached for this policy


class SlaPlan(Strict):
    """What a customer buys: a plan names its SLA policy, or none (no SLA, no credits)."""

    id: Identifier
    name: str | None = None
    policy: Identifier | None = None
    fee: Decimal | None = Field(default=None, ge=0)  # per policy period, for credit amounts
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class SlaCustomer(Strict):
    id: Identifier
    name: str | None = None
    plan: Identifier
    components: list[Identifier] = Field(default_factory=list)  # empty: all of the policy's
    fee: Decimal | None = Field(default=None, ge=0)  # overrides the plan's fee


class SlaExclusion(Strict):
    """Time that does not count for the SLA (naive times in the site timezone)."""

    start: datetime
    end: datetime
    reason: str = Field(min_length=1, max_length=2000)
    component: Identifier | None = None  # default: every component
    policy: Identifier | None = None  # default: every policy

    @model_validator(mode="after")
    def _ordered(self) -> SlaExclusion:
        if _naive(self.end) <= _naive(self.start):
            raise ValueError("end must be after start")
        return self


class BurnAlert(Strict):
    """Alert when the error budget burns `factor` times too fast over both windows."""

    long: Duration
    short: Duration
    factor: float = Field(gt=1)

    @model_validator(mode="after")
    def _short_inside_long(self) -> BurnAlert:
        if not 60_000 <= self.short < self.long:
            raise ValueError("short must be at least 1m and shorter than long")
        return self


def _default_burn_alerts() -> list[BurnAlert]:
    return [
        BurnAlert.model_validate({"long": "1h", "short": "5m", "factor": 14.4}),
        BurnAlert.model_validate({"long": "6h", "short": "30m", "factor": 6}),
    ]


class Sla(Strict):
    policies: list[SlaPolicy] = Field(default_factory=list)
    plans: list[SlaPlan] = Field(default_factory=list)
    customers: list[SlaCustomer] = Field(default_factory=list)
    exclusions: list[SlaExclusion] = Field(default_factory=list)
    burn_alerts: list[BurnAlert] = Field(default_factory=_default_burn_alerts)
    check_every: Duration = 60_000  # how often budgets and burn rates are evaluated
    close_after: Duration = 3_600_000  # a period is closed (sla.period_closed) this long after
    public_policy: Identifier | None = None  # whose rules the status page's uptime % follows

    def policy(self, policy_id: str) -> SlaPolicy | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def plan(self, plan_id: str) -> SlaPlan | None:
        return next((p for p in self.plans if p.id == plan_id), None)


SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"  # names in the secret store
# YAML reads a bare `off` as false: take it as the word it was meant to be.
Policy = Annotated[
    Literal["off", "open", "open_and_resolve"],
    BeforeValidator(lambda value: "off" if value is False else value),
]
ImpactName = Literal["none", "minor", "major", "critical"]


class SecretRef(Strict):
    """A value kept in the secret store (`uptally secrets set NAME`), not in this file."""

    secret: str = Field(pattern=SECRET_NAME_PATTERN)


def check_event_patterns(events: list[str]) -> list[str]:
    for pattern in events:
        if not any(fnmatchcase(kind.value, pattern) for kind in EventKind):
            known = ", ".join(kind.value for kind in EventKind)
            raise ValueError(f"unknown event {pattern!r}; events are {known} (or glob: x.*)")
    return events


def check_channel_url(url: str) -> str:
    """Any Apprise URL (scheme://…) or webhook+http(s)://host/…"""
    if re.search(r"[\s\x00-\x1f\x7f]", url) or not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", url):
        raise ValueError(
            "a channel url is an Apprise URL (slack://…, mailto://…) or webhook+https://…"
        )
    if url.lower().startswith("webhook+") and not re.match(
        r"^webhook\+https?://[^/?#\s]+", url, re.IGNORECASE
    ):
        raise ValueError("a webhook channel url is webhook+http(s)://host/path")
    return url


class Channel(Strict):
    id: Identifier
    # The URL may hold credentials (Slack, Telegram tokens): keep it in the secret store with
    # `url: {secret: NAME}`; likewise a webhook's signing `secret: {secret: NAME}`.
    url: Annotated[str, Field(min_length=1), AfterValidator(check_channel_url)] | SecretRef
    signing: Scheme = Scheme.UPTALLY  # a webhook's: uptally (X-Uptally-*) or standard
    secret: str | SecretRef | None = None
    # While rotating: deliveries are signed with both secrets until this one is removed.
    previous_secret: str | SecretRef | None = None
    events: list[str] = Field(default_factory=lambda: ["monitor.*", "incident.*"])
    components: list[Identifier] = Field(default_factory=list)
    monitors: list[Identifier] = Field(default_factory=list)

    _known_events = field_validator("events")(staticmethod(check_event_patterns))

    @field_validator("secret", "previous_secret")
    @classmethod
    def _suits_signing(
        cls, secret: str | SecretRef | None, info: ValidationInfo
    ) -> str | SecretRef | None:
        if isinstance(secret, str):  # one from the secret store is checked when it is used
            check_secret(info.data.get("signing", Scheme.UPTALLY), secret)
        return secret

    @model_validator(mode="after")
    def _secret_for_webhooks(self) -> Channel:
        webhook = not isinstance(self.url, str) or self.url.lower().startswith("webhook+")
        if self.secret is not None and not webhook:
            raise ValueError("only a webhook+http(s):// channel can have a secret")
        if self.signing is Scheme.STANDARD and (self.secret is None or not webhook):
            raise ValueError("signing: standard needs a webhook+http(s):// url and a secret")
        if self.previous_secret is not None and self.secret is None:
            raise ValueError("previous_secret needs a secret (the new one)")
        return self


class Smtp(Strict):
    """The mail server for subscriber mail (confirmation, incidents, maintenance)."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | SecretRef | None = None  # prefer {secret: NAME}
    sender: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$|^.+<[^@\s]+@[^@\s]+>$")
    timeout: Duration = 30_000
    verify_tls: bool = True
    concurrency: int = Field(default=4, ge=1, le=100)


class Subscribers(Strict):
    """People subscribing to the status page by e-mail (double opt-in) or webhook."""

    enabled: bool = True
    email: bool = True  # needs notifications.smtp and site.url
    webhook: bool = True
    events: list[str] = Field(default_factory=lambda: ["incident.*", "maintenance.*"])
    per_ip: int = Field(default=10, ge=1, le=100_000)  # subscription requests per window
    per_address: int = Field(default=3, ge=1, le=1000)  # confirmation mails per window
    window: Duration = 3_600_000
    confirm_within: Duration = 48 * 3_600_000
    allow_private_webhooks: bool = False  # webhooks to private addresses (tests, intranets)

    _known_events = field_validator("events")(staticmethod(check_event_patterns))


class Retry(Strict):
    """Delivery retries: exponential backoff with jitter, from `first` up to `max` apart."""

    first: Duration = 10_000
    max: Duration = 3_600_000
    give_up_after: Duration = 48 * 3_600_000  # at least a day of retries by default

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.max < self.first:
            raise ValueError("retry.max must be at least retry.first")
        return self


class Notifications(Strict):
    channels: list[Channel] = Field(default_factory=list)
    smtp: Smtp | None = None
    subscribers: Subscribers = Field(default_factory=Subscribers)
    retry: Retry = Field(default_factory=Retry)
    timeout: Duration = 10_000  # one delivery attempt
    lease: Duration = 30_000  # how long an instance owns a channel's queue without renewing
    workers: int = Field(default=64, ge=1, le=10_000)  # channel queues delivered at once
    retention: Duration = 30 * 86_400_000  # delivery records kept this long


class Automation(Strict):
    """Incidents opened (and resolved) by verified outages, per component."""

    default: Policy = "off"
    components: dict[Identifier, Policy] = Field(default_factory=dict)
    impact: ImpactName = "major"
    runbook: Identifier | None = None  # a runbook template attached to automatic incidents

    def policy(self, component: str) -> str:
        return self.components.get(component, self.default)


class Commitments(Strict):
    """Communication commitments per incident (the defaults are the seeds' promises)."""

    first_post: Duration = 2 * 3_600_000  # first public update after declaration
    update_every: Duration = 30 * 60_000  # while open
    postmortem_days: int = Field(default=5, ge=1, le=60)  # business days after resolution
    postmortem_after_down: Duration = 15 * 60_000  # … when a component was down longer
    remind_first_post: Duration = 30 * 60_000  # commitment.due this long before the due time
    remind_update: Duration = 5 * 60_000
    remind_postmortem: Duration = 24 * 3_600_000
    check_every: Duration = 15_000


class RunbookPhase(Strict):
    phase: str = Field(min_length=1, max_length=64)
    steps: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(min_length=1)


class Incidents(Strict):
    automation: Automation = Field(default_factory=Automation)
    commitments: Commitments = Field(default_factory=Commitments)
    runbooks: dict[Identifier, list[RunbookPhase]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_runbook(self) -> Incidents:
        name = self.automation.runbook
        if name is not None and name not in self.runbooks:
            raise ValueError(f"automation.runbook: no runbook template {name!r}")
        return self


class Probe(Strict):
    """The embedded probe (location `local`) and how the hub treats remote probe agents."""

    concurrency: int = Field(default=500, ge=1, le=100_000)
    enabled: bool = True
    offline_after: Duration = 120_000  # a location silent this long is offline
    max_clock_skew: Duration = 5_000  # agents' clocks further off than this are …
    clock_skew: Literal["correct", "reject"] = "correct"  # … corrected, or their results refused
    # The oldest result (and dropped-gap time) an agent may push, by its own clock: the longest
    # an agent queues results while the hub is away (keep agents' --max-age at most this).
    max_result_age: Duration = Field(default=30 * 86_400_000, ge=60_000, le=366 * 86_400_000)


class HeartbeatSettings(Strict):
    """Healthchecks-style pings: the project's ping key for /ping/<ping_key>/<slug> (read from
    the environment variable `ping_key_env` names) and how much of a ping's body is kept."""

    ping_key_env: VariableName | None = None
    # Healthchecks' ping body limit (hosted: 100 kB); a longer body is cut, not refused
    max_body: Size = Field(default=100_000, ge=0, le=1_048_576)


class Retention(Strict):
    results: Duration = 30 * 86_400_000
    pings: Duration = 30 * 86_400_000


class BackupKeep(Strict):
    """Retention of backups: the newest one of each of the last N days, weeks and months."""

    daily: int = Field(default=7, ge=0, le=3660)
    weekly: int = Field(default=4, ge=0, le=520)
    monthly: int = Field(default=12, ge=0, le=1200)


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")


class BackupS3(Strict):
    """Off-site copies of backups in an S3-compatible bucket (AWS, MinIO, Ceph, R2, …)."""

    bucket: str
    prefix: str = ""  # a folder in the bucket: "uptally/prod" keeps keys under uptally/prod/
    endpoint_url: str | None = None  # anything but AWS S3 itself
    region: str | None = None
    # Names of environment variables holding the credentials (never the credentials); without
    # them boto3's default chain applies (AWS_* variables, ~/.aws, instance roles …).
    access_key_env: VariableName | None = None
    secret_key_env: VariableName | None = None
    keep: BackupKeep | None = None  # retention of the remote copies; default: backup.keep

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_RE.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a bucket name: 3-63 lowercase letters, digits, dots and "
                "hyphens, starting and ending with a letter or digit"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _folder(cls, value: str) -> str:
        if _CONTROL_RE.search(value) or len(value) > 512:
            raise ValueError("prefix must be at most 512 characters, without control characters")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"prefix {value!r} must not start with / or contain ..")
        return value.strip("/") + "/" if value.strip("/") else ""

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return value if value is None else check_http_url(value)

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.match(value):
            raise ValueError(f"{value!r} is not a region name (such as eu-west-1, or auto)")
        return value

    @model_validator(mode="after")
    def _both_keys_or_neither(self) -> BackupS3:
        if (self.access_key_env is None) != (self.secret_key_env is None):
            raise ValueError(
                "give both access_key_env and secret_key_env, or neither (boto3's default "
                "credentials)"
            )
        return self


class Backup(Strict):
    """Scheduled backups by `serve` (off unless `dir` is set); see docs/operations.md."""

    dir: str | None = None
    every: Duration = 86_400_000
    keep: BackupKeep = Field(default_factory=BackupKeep)
    # None: encrypted whenever UPTALLY_SECRET_KEY is set; true requires it; false never.
    encrypt: bool | None = None
    monitor: Identifier = "uptally-backup"  # heartbeat pinged after each successful backup
    grace: Duration = 3_600_000
    s3: BackupS3 | None = None  # off-site copies of each backup

    def encrypts(self, has_key: bool) -> bool:
        """Whether a backup is encrypted, given whether a secret key is configured."""
        return has_key if self.encrypt is None else self.encrypt

    @property
    def s3_keep(self) -> BackupKeep:
        """Retention of the off-site copies (s3.keep, else the local keep)."""
        return self.s3.keep if self.s3 is not None and self.s3.keep is not None else self.keep

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


class Proxies(Strict):
    """Who may say where a request came from (`X-Forwarded-For`, `X-Forwarded-Proto`)."""

    # Addresses or CIDR networks of the reverse proxies in front of uptally; empty: nobody
    # (the peer address is the client's). Read at start.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: not an address or network: {value!r}") from None
        return values


def _allowance(entry: str) -> str:
    allowance(entry)  # raises ValueError naming the entry
    return entry


class Security(Proxies):  # trusted_proxies: see Proxies
    # channels made through the admin API may reach public addresses only (docs/trust.md)
    ssrf_guard: bool = True
    # internal targets allowed after all (guarded channels, subscriber webhooks): CIDRs or names
    allow_internal: list[Annotated[str, Field(max_length=253), AfterValidator(_allowance)]] = Field(
        default_factory=list, max_length=1000
    )
    # query parameters whose values are redacted wherever a URL is shown (besides the defaults)
    secret_query_keys: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=1000
    )
    max_body: Size = 8 << 20  # largest accepted API request body (agents send batches)
    auth_failures: int = Field(default=10, ge=1, le=10_000)  # per client address and window
    auth_window: Duration = 60_000

    @property
    def guard(self) -> Guard:
        return Guard.allowing(self.allow_internal)


class Config(Strict):
    site: Site = Field(default_factory=Site)
    locations: list[Location] = Field(default_factory=list)
    monitors: list[Monitor] = Field(default_factory=list)
    heartbeats: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    components: list[Component] = Field(default_factory=list)
    status_pages: list[StatusPage] = Field(default_factory=list)  # besides the main page at /
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    sla: Sla = Field(default_factory=Sla)
    notifications: Notifications = Field(default_factory=Notifications)
    probe: Probe = Field(default_factory=Probe)
    retention: Retention = Field(default_factory=Retention)
    backup: Backup = Field(default_factory=Backup)
    dr: DisasterRecovery = Field(default_factory=DisasterRecovery)
    security: Security = Field(default_factory=Security)
    incidents: Incidents = Field(default_factory=Incidents)
    console: Console = Field(default_factory=Console)
    # Who owns an object at runtime: what the config file declares is provisioned (read-only
    # through the API). Refused whole, or with `adopt` the file takes over a managed object.
    provisioning: Literal["refuse", "adopt"] = "refuse"
    # (section, id) -> "FILE:LINE" of each object the config file provisions
    _origins: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _automated_components_exist(self) -> Config:
        known = {c.id for c in self.components}
        for name in self.incidents.automation.components:
            if name not in known:
                raise ValueError(f"incidents.automation.components: unknown component {name!r}")
        return self

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

    def origin(self, section: str, object_id: str) -> str | None:
        """`FILE:LINE` where the config file declares this object, None if it does not."""
        return self._origins.get((section, object_id))

    def with_origins(self, origins: dict[tuple[str, str], str]) -> Config:
        self._origins = origins
        return self

    def status_page(self, page_id: str) -> StatusPage | None:
        return next((p for p in self.status_pages if p.id == page_id), None)

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
