"""Import Uptime Kuma (1.x JSON backup or kuma.db): monitors, notifications, pages, maintenance."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from uptally.config.schema import (
    TAG_PATTERN,
    TOKEN_PATTERN,
    Channel,
    Monitor,
)
from uptally.importers import kuma_pages
from uptally.importers.kuma_notifications import Unmapped, channel_url
from uptally.importers.kuma_pages import invalid
from uptally.importers.kuma_source import KumaData, Row, read, truthy
from uptally.importers.report import Outcome, Report

Note = tuple[str, Outcome, str]  # (what, outcome, why) of one field of a monitor

_MONITOR: TypeAdapter[Any] = TypeAdapter(Monitor)
_HTTP_TYPES = ("http", "keyword", "json-query")
_RECORDS = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CONTENT_TYPES = {
    "json": "application/json",
    "xml": "text/xml",
    "form": "application/x-www-form-urlencoded",
}
_SIMPLE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "contains")
_WHY_NOT = {
    "ping": "uptally has no ICMP check; add a tcp monitor on a port the host serves",
    "group": "uptally has no monitor groups; its members are imported on their own",
    "docker": "uptally does not watch Docker containers",
    "push": "",
}


def import_uptime_kuma(path: Path) -> Report:
    """Read `path` (JSON backup or kuma.db) and map it; raise SourceError if unreadable."""
    return _Import(read(path)).run()


class _Import:
    def __init__(self, data: KumaData) -> None:
        self.data = data
        self.report = Report("uptime-kuma")
        self.ids: dict[int, str] = {}  # Kuma monitor id -> uptally id, for imported monitors
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()
        self.channel_ids: set[str] = set()

    def run(self) -> Report:
        monitors = [m for row in self.data.monitors if (m := self._monitor(row)) is not None]
        doc: dict[str, Any] = {}
        if monitors:
            doc["monitors"] = monitors
        if self.data.has_pages:
            components, pages = kuma_pages.pages(self.data, self.ids, self.names, self.report)
            if components:
                doc["components"] = components
            if pages:
                doc["status_pages"] = pages
            windows = [
                w
                for row in self.data.maintenance
                if (w := kuma_pages.window(row, self.ids, self.report)) is not None
            ]
            if windows:
                doc["maintenance"] = windows
        else:
            self.report.add(
                self.data.origin, "status pages, maintenance", "left out",
                "a 1.x JSON backup does not contain them; import the kuma.db for those",
            )  # fmt: skip
        channels = [c for row in self.data.notifications if (c := self._channel(row)) is not None]
        if channels:
            doc["notifications"] = {"channels": channels}
        self.report.document = doc
        return self.report

    # -- monitors --------------------------------------------------------------------------

    def _monitor(self, row: Row) -> dict[str, Any] | None:
        kind = str(row.get("type") or "")
        name = str(row.get("name") or f"monitor {row.get('id')}")
        source = f"monitor #{row.get('id')} ({kind})"
        item = f"monitor {name!r}"
        if kind not in (*_HTTP_TYPES, "port", "dns", "push"):
            why = _WHY_NOT.get(kind) or f"uptally has no {kind} check"
            self.report.add(source, item, "left out", why)
            return None
        if row.get("upside_down"):
            why = "upside-down mode (up when unreachable) has no uptally equivalent"
            self.report.add(source, item, "left out", why)
            return None
        notes: list[Note] = []
        doc: dict[str, Any] = {"id": self._id(name, row.get("id")), "name": name}
        if row.get("description"):
            doc["description"] = str(row["description"])
        if not truthy(row.get("active", 1)):
            doc["enabled"] = False
        doc["tags"] = self._tags(row.get("tags") or [], notes)
        if not doc["tags"]:
            del doc["tags"]
        interval = max(int(row.get("interval") or 60), 1)
        if kind == "push":
            self._heartbeat(doc, row, interval, notes)
        else:
            self._timing(doc, row, interval, notes)
            if kind in _HTTP_TYPES:
                self._http(doc, row, kind, notes)
            elif kind == "port":
                doc.update(kind="tcp", host=row.get("hostname") or "", port=row.get("port") or 0)
            else:
                self._dns(doc, row, notes)
        for key, why in (
            ("resend_interval", "uptally notifies on each change of state, never repeats"),
            ("proxy_id", "uptally checks without a proxy"),
            ("parent", "the monitor group is flattened; the monitor is imported on its own"),
            ("expiry_notification", "certificate expiry reminders are not kept; add "
             "`cert.expires_in > 14d` to expect to make expiry a failure"),
        ):  # fmt: skip
            if row.get(key) not in (None, 0, False, "") and (
                key != "expiry_notification" or str(doc.get("url", "")).startswith("https:")
            ):
                notes.append((key, "left out", why))
        try:
            _MONITOR.validate_python(doc)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:])
            self.report.add(source, item, "left out", f"not valid here: {where}: {first['msg']}")
            return None
        self.ids[int(row["id"])] = doc["id"]
        self.names[int(row["id"])] = name
        self.report.add(source, item, "mapped", f"{doc['kind']} monitor {doc['id']!r}")
        for what, outcome, why in notes:
            self.report.add(source, f"{item}: {what}", outcome, why)
        return doc

    def _id(self, name: str, fallback: Any, taken: set[str] | None = None) -> str:
        """A unique id from a name (monitors by default; channels pass their own set)."""
        taken = self.taken if taken is None else taken
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:56] or f"kuma-{fallback}"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate)
        return candidate

    def _tags(self, tags: list[tuple[str, str]], notes: list[Note]) -> list[str]:
        out: list[str] = []
        for name, value in tags:
            text = f"{name}:{value}" if value else name
            tag = re.sub(r"[^A-Za-z0-9_.:/\-]+", "-", text).strip("-")[:64]
            if not re.match(TAG_PATTERN, tag) or tag in out:
                notes.append((f"tag {text!r}", "left out", "empty or repeated once cleaned"))
                continue
            if tag != text:
                notes.append((f"tag {text!r}", "approximated", f"written {tag!r}"))
            out.append(tag)
        return out

    def _timing(self, doc: dict[str, Any], row: Row, interval: int, notes: list[Note]) -> None:
        doc["interval"] = f"{interval}s"
        retry = int(row.get("retry_interval") or 0) or interval
        doc["retry_interval"] = f"{retry}s"
        timeout = float(row.get("timeout") or 0)
        if timeout <= 0:
            timeout = interval * 0.8
            notes.append(("timeout", "approximated", "unset in Kuma: its default, 80% of interval"))
        doc["timeout"] = _seconds(timeout)
        retries = int(row.get("maxretries") or 0)
        doc["confirm"] = min(retries + 1, 100)
        notes.append(
            ("maxretries", "mapped", f"confirm: {doc['confirm']} (down after {retries} retries)")
        )

    def _heartbeat(self, doc: dict[str, Any], row: Row, interval: int, notes: list[Note]) -> None:
        doc.update(kind="heartbeat", period=f"{interval}s")
        retries = int(row.get("maxretries") or 0)
        if retries:
            retry = int(row.get("retry_interval") or 0) or interval
            doc["grace"] = f"{retries * retry}s"
        token = row.get("push_token")
        if isinstance(token, str) and re.match(TOKEN_PATTERN, token):
            doc["token"] = token
            notes.append(
                ("push URL", "approximated", f"pings go to /ping/{token} instead of "
                 f"/api/push/{token}; ?status=down is taken as a ping, not as a failure")
            )  # fmt: skip
        else:
            notes.append(("push token", "left out", "missing or not a valid uptally token: "
                          "uptally makes a new one"))  # fmt: skip

    def _http(self, doc: dict[str, Any], row: Row, kind: str, notes: list[Note]) -> None:
        doc.update(kind="http", url=row.get("url") or "")
        method = str(row.get("method") or "GET").upper()
        if method in _METHODS:
            if method != "GET":
                doc["method"] = method
        else:
            notes.append(("method", "left out", f"{method} is not supported; GET is used"))
        headers = _headers(row.get("headers"), notes)
        if row.get("body"):
            doc["body"] = str(row["body"])
            content = _CONTENT_TYPES.get(str(row.get("http_body_encoding") or "json"))
            if content and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = content
        auth = row.get("auth_method")
        if (auth in (None, "", "basic")) and row.get("basic_auth_user"):
            pair = f"{row['basic_auth_user']}:{row.get('basic_auth_pass') or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            notes.append(("basic auth", "approximated", "an Authorization header; the password "
                          "is in the YAML: move it into a ${secret:…}"))  # fmt: skip
        elif auth not in (None, "", "basic"):
            notes.append(("auth", "left out", f"{auth} authentication has no uptally equivalent"))
        if headers:
            doc["headers"] = headers
        if truthy(row.get("ignore_tls")):
            doc["verify_tls"] = False
        redirects = row.get("maxredirects")
        if redirects is not None:
            if int(redirects) == 0:
                doc["follow_redirects"] = False
            else:
                doc["max_redirects"] = min(int(redirects), 30)
        doc["expect"] = _statuses(row.get("accepted_statuscodes"), notes)
        if kind == "keyword":
            op = "not contains" if truthy(row.get("invert_keyword")) else "contains"
            doc["expect"].append(f"body {op} {json.dumps(str(row.get('keyword') or ''))}")
        elif kind == "json-query":
            doc["expect"].append(_json_query(row, notes))
        if not doc["expect"]:
            del doc["expect"]

    def _dns(self, doc: dict[str, Any], row: Row, notes: list[Note]) -> None:
        doc.update(kind="dns", host=row.get("hostname") or "")
        record = str(row.get("dns_resolve_type") or "A").upper()
        if record in _RECORDS:
            doc["record"] = record
        else:
            notes.append(("dns_resolve_type", "left out", f"{record} records: A is checked"))
        servers = [s.strip() for s in str(row.get("dns_resolve_server") or "").split(",")]
        servers = [s for s in servers if s]
        if servers:
            port = int(row.get("port") or 53)
            server = servers[0]
            doc["server"] = (
                f"[{server}]:{port}"
                if ":" in server and port != 53
                else (f"{server}:{port}" if port != 53 else server)
            )
            if len(servers) > 1:
                notes.append(("dns_resolve_server", "approximated", f"only {servers[0]} is asked"))

    # -- notifications --------------------------------------------------------------------

    def _channel(self, row: Row) -> dict[str, Any] | None:
        config = row.get("config") if isinstance(row.get("config"), dict) else {}
        assert isinstance(config, dict)
        name = str(row.get("name") or config.get("name") or f"notification {row.get('id')}")
        source = f"notification #{row.get('id')} ({config.get('type')})"
        try:
            url, note = channel_url(config)
        except Unmapped as error:
            self.report.add(source, repr(name), "left out", str(error))
            return None
        users = [
            self.ids[int(m["id"])]
            for m in self.data.monitors
            if int(row["id"]) in (m.get("notifications") or []) and int(m["id"]) in self.ids
        ]
        doc: dict[str, Any] = {"id": self._id(name, row.get("id"), self.channel_ids), "url": url,
                               "events": ["monitor.down", "monitor.up"]}  # fmt: skip
        if users:
            doc["monitors"] = users
        try:
            Channel.model_validate(doc)
        except ValidationError as error:
            self.report.add(source, repr(name), "left out", invalid(error))
            return None
        self.report.add(source, repr(name), "mapped", f"channel {doc['id']!r}: {url.split(':')[0]}"
                        "; its URL holds credentials: consider url: {secret: NAME}")  # fmt: skip
        if note:
            self.report.add(source, repr(name), "approximated", note)
        if not users:
            why = "used by no imported monitor in Kuma; here it hears every monitor"
            self.report.add(source, f"{name!r}: routing", "approximated", why)
        return doc


def _seconds(value: float) -> str:
    ms = max(round(value * 1000), 100)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _headers(raw: Any, notes: list[Note]) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        notes.append(("headers", "left out", "not a JSON object of names and values"))
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _statuses(codes: Any, notes: list[Note]) -> list[str]:
    """Kuma's accepted codes (["200-299", "301"]) as status expectations."""
    if not codes or list(codes) == ["200-299"]:
        return ["status >= 200", "status <= 299"]
    ranges: list[tuple[int, int]] = []
    for code in codes:
        first, _, last = str(code).partition("-")
        if not (first.isdigit() and (last or first).isdigit()):
            notes.append(("accepted_statuscodes", "left out", f"{code!r} is not a code or range"))
            continue
        ranges.append((int(first), int(last or first)))
    if not ranges:
        return ["status >= 200", "status <= 299"]
    if len(ranges) == 1:
        a, b = ranges[0]
        return [f"status == {a}"] if a == b else [f"status >= {a}", f"status <= {b}"]
    listed = sorted({c for a, b in ranges for c in range(a, b + 1)})
    if len(listed) <= 200:
        return [f"status in {json.dumps(listed)}"]
    a, b = min(r[0] for r in ranges), max(r[1] for r in ranges)
    notes.append(("accepted_statuscodes", "approximated", f"{codes}: any status {a}..{b}"))
    return [f"status >= {a}", f"status <= {b}"]


def _json_query(row: Row, notes: list[Note]) -> str:
    path = str(row.get("json_path") or "").strip().removeprefix("$.").removeprefix("$")
    expected = str(row.get("expected_value") or "")
    op = str(row.get("json_path_operator") or "==")
    if not _SIMPLE_PATH.match(path) or op not in _OPERATORS:
        why = f"JSONata {path!r} {op} has no uptally path: only that the body is JSON is checked"
        notes.append(("json query", "approximated", why))
        return "json exists"
    ordered = op in ("<", "<=", ">", ">=") and _NUMBER.fullmatch(expected) is not None
    # Kuma compares text; uptally's == takes a number as equal to its decimal text
    literal = ordered or expected in ("true", "false", "null")
    value = expected if literal else json.dumps(expected)
    notes.append(("json query", "mapped", f"json.{path} {op} {value}"))
    return f"json.{path} {op} {value}"
