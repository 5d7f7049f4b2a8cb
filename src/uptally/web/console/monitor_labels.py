"""What the monitor editor writes beside each field: labels, hints and choices."""

from __future__ import annotations

# What the editor writes beside each field: label, hint (by "<kind>.<key>", else by key).
_ROOTS = {
    "http": "status, latency, body, json.<path>, header.<name>, cert.days",
    "tcp": "reply, latency, cert.days",
    "jsonrpc": "result.<path>, error, status, latency",
    "dns": "answers, rcode, latency",
    "metric": "value, latency",
}
TEXTS: dict[str, tuple[str, str]] = {
    "url": ("URL", "http:// or https://, naming a host"),
    "method": ("HTTP method", ""),
    "jsonrpc.method": ("JSON-RPC method", "for example initialize"),
    "headers": ("Headers", "one per line, as Name: value"),
    "body": ("Request body", "sent as is; leave empty for none"),
    "follow_redirects": ("Follow redirects", ""),
    "verify_tls": ("Verify the TLS certificate", ""),
    "host": ("Host", "a host name or IP address"),
    "port": ("Port", "1 to 65535"),
    "tls": ("Connect with TLS", ""),
    "server_name": ("TLS server name", "if not the host"),
    "send": ("Send", "text sent after connecting"),
    "params": ("Params", "YAML or JSON: a mapping or a list"),
    "dns.host": ("Name to resolve", "for example example.com"),
    "record": ("Record type", ""),
    "server": ("DNS server", "an IP or host name, optionally :port; empty: the system's"),
    "protocol": ("Protocol", ""),
    "steps": ("Steps", "YAML: a list of steps, each with a kind (http, tcp, jsonrpc, dns)"),
    "period": ("Period", "how often the job pings, e.g. 1d or 15m (or give a schedule)"),
    "schedule": ("Schedule", "cron, in the site's timezone, instead of a period"),
    "grace": ("Grace", "how late a ping may be; default: the period, at most 1h"),
    "token": ("Ping token", "8 to 128 letters, digits, _ or -; empty: one is made"),
    "source": ("Source", ""),
    "query": ("PromQL query", "for source prometheus"),
    "path": ("JSON path", "for source json, e.g. json.data.rate"),
    "combine": ("Combine several series", "for source prometheus"),
    "match": ("Alert labels", "YAML: label: value, all equal in an Alertmanager alert"),
}
OPTIONS: dict[str, list[str]] = {
    "http.method": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    "dns.record": ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR"],
    "dns.protocol": ["udp", "tcp"],
    "metric.source": ["prometheus", "json"],
    "metric.combine": ["", "min", "max", "sum", "avg"],
}


def text_of(kind: str, key: str) -> tuple[str, str]:
    """(label, hint) of a kind's field."""
    if key == "expect":
        hint = "one condition per line, e.g. status == 200 or latency < 500ms; on: "
        return ("Expect", hint + _ROOTS.get(kind, ""))
    return TEXTS.get(f"{kind}.{key}") or TEXTS[key]
