"""Gatus configuration (config.yaml, or a directory of them) to uptally YAML."""

from __future__ import annotations

import json
import re
import warnings
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from uptally.conditions import ConditionError, parse_condition
from uptally.config.schema import DNS_ROOTS, HTTP_ROOTS, TCP_ROOTS
from uptally.importers.report import Report

SOURCE = "gatus"
_CONDITION = re.compile(r"^\s*(.+?)\s*(==|!=|<=|>=|<|>)\s*(.*?)\s*$")
_DAYS = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}
# Top-level sections that configure Gatus itself, not what it watches.
_OWN = {
    "storage": "uptally keeps its own store (SQLite or PostgreSQL, UPTALLY_DATABASE_URL)",
    "web": "uptally's listen address is `serve --host/--port`",
    "ui": "the status page is styled by `site:` (title, logo, description)",
    "security": "uptally uses API tokens and console accounts (docs/trust.md)",
    "metrics": "uptally always serves Prometheus /metrics",
    "connectivity": "uptally's probes check their own network with canaries (docs/locations.md)",
    "concurrency": "uptally bounds concurrent checks with `probe.concurrency`",
    "disable-monitoring-lock": "uptally bounds concurrent checks with `probe.concurrency`",
    "skip-invalid-config-update": "uptally refuses an invalid file on reload and keeps the old",
    "announcements": "post an incident instead (POST /api/v1/incidents)",
}


# alert type -> (monitor, send-on-resolved) of each endpoint alerting through it
Users = dict[str, list[tuple[str, bool | None]]]


ROOTS = {"http": HTTP_ROOTS, "tcp": TCP_ROOTS, "dns": DNS_ROOTS}
# Endpoint keys this importer reads; any other is reported as left out.
_READ = {
    "name",
    "group",
    "url",
    "method",
    "body",
    "headers",
    "graphql",
    "interval",
    "conditions",
    "alerts",
    "enabled",
    "client",
    "dns",
    "maintenance-windows",
}


class GatusError(ValueError):
    """The source is not a Gatus configuration uptally can read."""


def read(source: Path) -> dict[str, Any]:
    """One Gatus config, or a directory of YAML files merged the way Gatus merges them."""
    files = sorted(source.rglob("*.y*ml")) if source.is_dir() else [source]
    if not files:
        raise GatusError(f"{source}: no .yaml or .yml file in this directory")
    merged: dict[str, Any] = {}
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise GatusError(f"{file}: cannot read it as YAML: {error}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise GatusError(f"{file}: a Gatus configuration is a mapping at the top")
        for key, value in data.items():
            if isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = [*merged[key], *value]
            elif isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    if not merged.get("endpoints") and not merged.get("external-endpoints"):
        raise GatusError(f"{source}: no endpoints or external-endpoints: is it a Gatus config?")
    return merged


def convert(data: dict[str, Any], today: date | None = None) -> Report:
    report = Report(SOURCE)
    ids: set[str] = set()
    monitors: list[dict[str, Any]] = []
    components: list[dict[str, Any]] = []
    users: Users = {}
    windows: list[dict[str, Any]] = []
    for key, why in _OWN.items():
        if key in data:
            report.left_out(f"{key}:", f"configures Gatus itself; {why}")
    for key in data:
        if key not in _OWN and key not in (
            "endpoints",
            "external-endpoints",
            "alerting",
            "maintenance",
        ):
            report.left_out(f"{key}:", "not known to this importer")
    for raw in data.get("endpoints") or []:
        monitor = _endpoint(raw, ids, report, users, windows)
        if monitor is not None:
            monitors.append(monitor)
            components.append(_component(monitor, raw))
    for raw in data.get("external-endpoints") or []:
        monitor = _external(raw, ids, report, users)
        if monitor is not None:
            monitors.append(monitor)
            components.append(_component(monitor, raw))
    channels = _channels(data.get("alerting") or {}, users, report)
    site: dict[str, Any] = {}
    if data.get("maintenance"):
        window = _maintenance(data["maintenance"], "maintenance", [], report, today, site)
        if window is not None:
            windows.insert(0, window)
    document: dict[str, Any] = {}
    if site:
        document["site"] = site
    document["monitors"] = monitors
    document["components"] = components
    if channels:
        document["notifications"] = {"channels": channels}
    if windows:
        document["maintenance"] = windows
    report.document = document
    return report


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-").lower()
    return slug[:64] or "endpoint"


def _unique(raw: dict[str, Any], ids: set[str]) -> str:
    name = str(raw.get("name") or "endpoint")
    candidate = _slug(name)
    if candidate in ids and raw.get("group"):
        candidate = _slug(f"{raw['group']}-{name}")
    base, n = candidate, 2
    while candidate in ids:
        candidate = f"{base[:60]}-{n}"
        n += 1
    ids.add(candidate)
    return candidate


def _label(raw: dict[str, Any]) -> str:
    group = raw.get("group")
    return f"{group}/{raw.get('name')}" if group else str(raw.get("name"))


def _component(monitor: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    component: dict[str, Any] = {"id": monitor["id"], "name": monitor["name"]}
    if raw.get("group"):
        component["group"] = str(raw["group"])
    component["monitors"] = [monitor["id"]]
    return component


def _endpoint(
    raw: Any,
    ids: set[str],
    report: Report,
    users: Users,
    windows: list[dict[str, Any]],
) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("url"):
        report.left_out(f"endpoint {raw!r}"[:120], "an endpoint needs a name and a url")
        return None
    label = f"endpoint {_label(raw)}"
    url = str(raw["url"])
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    monitor: dict[str, Any] = {"id": "", "name": str(raw["name"])}
    if raw.get("dns"):
        kind = "dns"
    elif raw.get("grpc"):
        report.left_out(label, "gRPC health checks have no uptally check kind")
        return None
    elif scheme in ("http", "https"):
        kind = "http"
    elif scheme in ("tcp", "tls"):
        kind = "tcp"
    elif scheme == "icmp":
        report.left_out(
            label,
            "uptally has no ICMP ping (it runs unprivileged); add a tcp monitor to a port "
            f"{urlsplit(url).hostname} serves",
        )
        return None
    else:
        report.left_out(label, f"{scheme or url!r} endpoints have no uptally check kind")
        return None
    monitor["id"] = _unique(raw, ids)
    monitor["kind"] = kind
    if kind == "http":
        monitor["url"] = url
        if raw.get("method") and str(raw["method"]).upper() != "GET":
            monitor["method"] = str(raw["method"]).upper()
        if raw.get("headers"):
            monitor["headers"] = {str(k): str(v) for k, v in raw["headers"].items()}
        if raw.get("graphql"):
            monitor["method"] = "POST"
            monitor["json"] = {"query": str(raw.get("body") or "")}
            report.approximated(f"{label}: graphql", "sent as a JSON POST {query: body}")
        elif raw.get("body"):
            monitor["body"] = str(raw["body"])
    elif kind == "tcp":
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            ids.discard(monitor["id"])
            report.left_out(label, f"{url!r} has no host and port")
            return None
        monitor["host"], monitor["port"] = parts.hostname, parts.port
        if scheme == "tls":
            monitor["tls"] = True
        if raw.get("body"):
            monitor["send"] = str(raw["body"])
    else:
        dns = raw["dns"]
        monitor["host"] = str(dns.get("query-name", ""))
        monitor["record"] = str(dns.get("query-type", "A")).upper()
        monitor["server"] = url.split("://", 1)[-1]
    if raw.get("interval"):
        monitor["interval"] = str(raw["interval"])
    client = raw.get("client") or {}
    if client.get("timeout"):
        monitor["timeout"] = str(client["timeout"])
    if client.get("insecure") and kind in ("http", "tcp"):
        monitor["verify_tls"] = False
    if client.get("ignore-redirect") and kind == "http":
        monitor["follow_redirects"] = False
    if raw.get("enabled") is False:
        monitor["enabled"] = False
    expect = _conditions(raw.get("conditions") or [], kind, label, report)
    if expect:
        monitor["expect"] = expect
    elif raw.get("conditions") and kind == "http":
        report.approximated(
            f"{label}: conditions", "none maps: uptally's default for http, status < 400, applies"
        )
    thresholds = _alerts(raw, monitor["id"], users)
    if thresholds:
        monitor["confirm"] = max(1, min(thresholds))
        report.approximated(
            f"{label}: alerts",
            f"failure-threshold {min(thresholds)} becomes confirm: {monitor['confirm']} (uptally "
            "confirms downtime per monitor, then notifies every channel; success-threshold and "
            "per-alert descriptions are not kept)",
        )
    rest = sorted(set(client) - {"timeout", "insecure", "ignore-redirect"})
    if rest:
        report.left_out(f"{label}: client {', '.join(rest)}", "no uptally equivalent")
    for key in sorted(set(raw) - _READ):
        report.left_out(f"{label}: {key}", "no uptally equivalent")
    for index, window in enumerate(raw.get("maintenance-windows") or []):
        made = _maintenance(
            window, f"{monitor['id']}-maintenance-{index + 1}", [monitor["id"]], report, None, None
        )
        if made is not None:
            windows.append(made)
    report.mapped(label, f"{kind} monitor {monitor['id']}")
    return monitor


def _alerts(raw: dict[str, Any], monitor: str, users: Users) -> set[int]:
    """Note which providers the endpoint alerts through; its failure thresholds."""
    thresholds = set()
    for alert in raw.get("alerts") or []:
        if not isinstance(alert, dict) or not alert.get("type") or alert.get("enabled") is False:
            continue
        resolved = alert.get("send-on-resolved")
        users.setdefault(str(alert["type"]), []).append((monitor, resolved))
        thresholds.add(int(alert.get("failure-threshold", 3)))
    return thresholds


def _conditions(conditions: list[Any], kind: str, label: str, report: Report) -> list[str]:
    expect: list[str] = []
    for text in conditions:
        item = f"{label}: {text}"
        result = _condition(str(text), kind)
        if isinstance(result, tuple):
            made, how = result
            if made is None:
                report.mapped(item, how)
                continue
            try:
                parse_condition(made, ROOTS[kind])
            except ConditionError as error:
                report.left_out(item, f"became {made!r}, which uptally cannot parse: {error}")
                continue
            expect.append(made)
            if how:
                report.approximated(item, f"{made!r}: {how}")
            else:
                report.mapped(item, repr(made))
        else:
            report.left_out(item, result)
    return expect


def _value(text: str) -> str:
    """A Gatus right-hand side as an uptally literal: numbers and booleans stay, text is quoted."""
    if re.fullmatch(r"-?\d+(\.\d+)?|true|false", text):
        return text
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return json.dumps(text)


def _json_path(path: str) -> str:
    return "json" + (path if path.startswith("[") else f".{path}")


def _glob(pattern: str) -> str:
    escaped = (re.escape(part).replace("\\ ", " ") for part in pattern.split("*"))
    return "^" + ".*".join(escaped) + "$"


def _condition(text: str, kind: str) -> tuple[str | None, str] | str:
    """(expectation or None when the check does it anyway, how it was approximated) or why not."""
    match = _CONDITION.match(text)
    if not match:
        return "not a `[PLACEHOLDER] OPERATOR VALUE` condition"
    left, op, right = match.groups()
    negate = op == "!="
    any_of = re.fullmatch(r"any\((.*)\)", right)
    pattern = re.fullmatch(r"pat\((.*)\)", right)
    if left == "[CONNECTED]":
        if right == "true" and op == "==":
            return None, f"a {kind} check fails when it cannot connect"
        return "a check that must not connect has no uptally equivalent"
    if left == "[STATUS]":
        if any_of:
            values = [v.strip() for v in any_of[1].split(",")]
            return f"status {'not in' if negate else 'in'} [{', '.join(values)}]", ""
        return f"status {op} {right}", ""
    if left == "[RESPONSE_TIME]":
        if not right.isdigit():
            return f"response time compared with {right!r}, not a number of milliseconds"
        return f"latency {op} {right}ms", ""
    if left == "[CERTIFICATE_EXPIRATION]":
        value = f"{right}ms" if right.isdigit() else right
        return f"cert.expires_in {op} {value}", ""
    if left == "[DNS_RCODE]":
        return f"rcode {op} {_value(right)}", ""
    if left == "[BODY]" and kind == "dns":
        verb = "not contains" if negate else "contains"
        if op not in ("==", "!="):
            return f"[BODY] {op} has no meaning for a DNS answer in uptally"
        return (
            f"answers {verb} {_value(right)}",
            "Gatus compares the answer text; uptally checks the value is among the answers",
        )
    if left == "[BODY]" and kind == "tcp":
        left = "[REPLY]"  # what a tcp endpoint read back after sending its body
    if left == "[REPLY]":
        if pattern:
            verb = "not matches" if negate else "matches"
            return f"reply {verb} {json.dumps(_glob(pattern[1]))}", "the pattern became a regex"
        if op not in ("==", "!="):
            return f"[BODY] {op} has no meaning for a tcp reply in uptally"
        return f"reply {op} {_value(right)}", ""
    if left == "[BODY]" or left.startswith("[BODY]."):
        root = "body" if left == "[BODY]" else _json_path(left[len("[BODY].") :])
        if pattern:
            verb = "not matches" if negate else "matches"
            return (
                f"{root} {verb} {json.dumps(_glob(pattern[1]))}",
                "the Gatus pattern became a regular expression",
            )
        if any_of:
            listed = ", ".join(_value(v.strip()) for v in any_of[1].split(","))
            return f"{root} {'not in' if negate else 'in'} [{listed}]", ""
        if root == "body" and op in ("==", "!="):
            return f"body {op} {_value(right)}", ""
        return f"{root} {op} {_value(right)}", ""
    length = re.fullmatch(r"len\(\[BODY\](?:\.(.+))?\)", left)
    if length:
        root = "body" if length[1] is None else _json_path(length[1])
        return f"len({root}) {op} {right}", ""
    has = re.fullmatch(r"has\(\[BODY\]\.(.+)\)", left)
    if has and right in ("true", "false"):
        exists = (right == "true") != negate
        return f"{_json_path(has[1])} {'exists' if exists else 'not exists'}", ""
    if left == "[DOMAIN_EXPIRATION]":
        return "uptally does not look up domain registrations (WHOIS/RDAP)"
    if left == "[IP]":
        return "uptally does not expose the resolved address to expectations"
    return f"{left} has no uptally equivalent"


def _external(raw: Any, ids: set[str], report: Report, users: Users) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        report.left_out(f"external endpoint {raw!r}"[:120], "an external endpoint needs a name")
        return None
    label = f"external endpoint {_label(raw)}"
    monitor: dict[str, Any] = {"id": _unique(raw, ids), "name": str(raw["name"])}
    monitor["kind"] = "heartbeat"
    interval = (raw.get("heartbeat") or {}).get("interval")
    if interval:
        monitor["period"] = str(interval)
        how = f"a heartbeat with period {interval}"
    else:
        monitor["period"] = "24h"
        how = "a heartbeat with period 24h (Gatus' has no heartbeat interval; set yours)"
    token = str(raw.get("token") or "")
    if re.fullmatch(r"[A-Za-z0-9_\-]{8,128}", token):
        monitor["token"] = token
    elif token:
        how += "; its token does not fit uptally's (8-128 of A-Z a-z 0-9 _ -): one is generated"
    if raw.get("enabled") is False:
        monitor["enabled"] = False
    report.approximated(
        label,
        f"{how}; jobs call /ping/<token> (or /ping/<token>/fail) instead of Gatus' "
        "/api/v1/endpoints/<key>/external?success=",
    )
    if _alerts(raw, monitor["id"], users):
        report.approximated(
            f"{label}: alerts", "its channels notify on its heartbeat going down (late or failed)"
        )
    return monitor


def _channels(alerting: dict[str, Any], users: Users, report: Report) -> list[dict[str, Any]]:
    channels: list[dict[str, Any]] = []
    for name, provider in alerting.items():
        item = f"alerting.{name}"
        if not isinstance(provider, dict):
            report.left_out(item, "not a provider mapping")
            continue
        made = _apprise(name, provider)
        if isinstance(made, str):
            report.left_out(item, made)
            continue
        url, how = made
        if not _apprise_takes(url):
            report.left_out(
                item,
                f"Apprise refuses the {url.split('://')[0]}:// URL made of it: "
                "check its credentials",
            )
            continue
        monitors = sorted({m for m, _ in users.get(name, [])})
        if not monitors:
            report.left_out(item, "no endpoint alerts through it (uptally would send it all)")
            continue
        channel: dict[str, Any] = {"id": _slug(name), "url": url}
        default = bool((provider.get("default-alert") or {}).get("send-on-resolved", False))
        resolved = any(default if r is None else r for _, r in users.get(name, []))
        channel["events"] = ["monitor.down", "monitor.up"] if resolved else ["monitor.down"]
        channel["monitors"] = monitors
        channels.append(channel)
        note = "; the URL holds credentials: move it to the secret store ({secret: NAME})"
        if how:
            report.approximated(item, f"{url.split('://')[0]}:// channel: {how}{note}")
        else:
            report.mapped(item, f"{url.split('://')[0]}:// channel{note}")
    for name in sorted(set(users) - set(alerting)):
        report.left_out(f"alerts of type {name}", "no such provider under alerting:")
    return channels


def _apprise(name: str, p: dict[str, Any]) -> tuple[str, str] | str:
    """An Apprise URL for a Gatus provider, with how it was approximated, or why not."""
    hook = str(p.get("webhook-url") or "")
    if name == "slack" and hook:
        parts = urlsplit(hook).path.split("/services/")[-1]
        return f"slack://{parts}", ""
    if name == "discord" and hook:
        parts = urlsplit(hook).path.split("/webhooks/")[-1]
        return f"discord://{parts}", ""
    if name == "teams":
        return (
            "Microsoft retired Office 365 connector webhooks and Apprise no longer sends to "
            "them: make a Teams Workflows webhook and use a workflows:// channel"
        )
    if name == "teams-workflows" and hook:
        return hook, "Apprise reads the Workflows URL as it is"
    if name == "mattermost" and hook:
        split = urlsplit(hook)
        return f"mmosts://{split.netloc}{split.path.replace('/hooks/', '/')}", ""
    if name == "telegram" and p.get("token") and p.get("id"):
        return f"tgram://{p['token']}/{p['id']}", ""
    if name == "pagerduty" and p.get("integration-key"):
        key = str(p["integration-key"])
        return f"pagerduty://{key}@{key}", "the integration key is given as routing and API key"
    if name == "email" and p.get("host") and p.get("to"):
        user = quote(str(p.get("username") or p.get("from") or ""), safe="")
        password = quote(str(p.get("password") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        port = f":{p['port']}" if p.get("port") else ""
        query = f"?to={quote(str(p['to']), safe='@,')}"
        if p.get("from"):
            query += f"&from={quote(str(p['from']), safe='@')}"
        return f"mailtos://{auth}{p['host']}{port}{query}", ""
    if name == "ntfy" and p.get("topic"):
        host = urlsplit(str(p.get("url") or "https://ntfy.sh")).netloc
        return f"ntfys://{host}/{p['topic']}", ""
    if name == "custom" and p.get("url"):
        url = str(p["url"])
        if not url.lower().startswith(("http://", "https://")):
            return f"custom URL {url!r} is not http(s)"
        return (
            f"webhook+{url}",
            "uptally posts its own signed JSON event; Gatus' method, body template and "
            "placeholders are not kept",
        )
    return f"no Apprise mapping for the Gatus {name} provider with these keys"


def _apprise_takes(url: str) -> bool:
    if url.startswith("webhook+"):
        return True  # uptally's own webhook channel
    with warnings.catch_warnings():
        # Apprise loads its plugins on first use; some import modules Python deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        return bool(apprise.Apprise().add(url))


def _maintenance(
    raw: Any,
    window_id: str,
    monitors: list[str],
    report: Report,
    today: date | None,
    site: dict[str, Any] | None,
) -> dict[str, Any] | None:
    item = "maintenance" if not monitors else f"maintenance-windows of {monitors[0]}"
    if not isinstance(raw, dict) or raw.get("enabled") is False:
        report.left_out(item, "disabled")
        return None
    start, duration = str(raw.get("start") or ""), raw.get("duration")
    if not re.fullmatch(r"\d{1,2}:\d{2}", start) or not duration:
        report.left_out(item, "needs start (hh:mm) and duration")
        return None
    days = [str(d).lower() for d in raw.get("every") or []]
    unknown = [d for d in days if d not in _DAYS]
    if unknown:
        report.left_out(item, f"unknown days {unknown}")
        return None
    rule = "FREQ=DAILY" if not days else "FREQ=WEEKLY;BYDAY=" + ",".join(_DAYS[d] for d in days)
    hour, minute = start.split(":")
    first = (today or date.today()).isoformat()
    window: dict[str, Any] = {
        "id": window_id,
        "title": "Maintenance (from Gatus)",
        "rrule": rule,
        "start": f"{first}T{int(hour):02d}:{minute}",
        "duration": str(duration),
    }
    if monitors:
        window["monitors"] = monitors
    how = f"recurring window {rule} from {start} for {duration}"
    zone = raw.get("timezone")
    if zone and site is not None:
        site["timezone"] = str(zone)
        how += f"; site.timezone is set to {zone} (uptally reads naive times there)"
    elif zone:
        how += f"; its timezone {zone} is not kept: uptally reads it in site.timezone"
    report.mapped(item, how)
    return window
