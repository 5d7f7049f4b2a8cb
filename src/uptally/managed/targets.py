"""Where a monitor made through the API would make the hub connect, screened by the SSRF guard
(the hub probes public addresses only, unless `security.allow_internal` names the target)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from pydantic import BaseModel

from uptally.config.managed import Problem
from uptally.config.pointers import PathKey, json_pointer
from uptally.config.schema import ActiveMonitor, DnsRequest, ScenarioMonitor, TcpRequest
from uptally.netguard import Guard, UnsafeTarget, system_lookup, url_host


def hosts_of(monitor: BaseModel, base: PathKey = ()) -> Iterator[tuple[PathKey, str, int]]:
    """(path, host, port) of every address the monitor (or a scenario step) connects to."""
    if isinstance(monitor, ScenarioMonitor):
        for index, step in enumerate(monitor.steps):
            yield from hosts_of(step, (*base, "steps", index))
        return
    url = getattr(monitor, "url", None)
    if isinstance(url, str) and "${" not in url:
        try:
            host, port = url_host(url)
        except UnsafeTarget:
            return  # not http(s): the check itself says what is wrong
        yield (*base, "url"), host, port
    if isinstance(monitor, TcpRequest) and "${" not in monitor.host:
        yield (*base, "host"), monitor.host, monitor.port
    if isinstance(monitor, DnsRequest) and monitor.server:
        yield (*base, "server"), *_server(monitor.server)


def _server(value: str) -> tuple[str, int]:
    """A DNS `server` as host and port (its forms are checked by the schema)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.removeprefix(":") or 53)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, 53


async def screen(
    monitors: Sequence[BaseModel], guard: Guard, many: bool, section: str = "monitors"
) -> list[Problem]:
    """A problem for each target of a monitor checked at `local` that the guard refuses."""
    problems = []
    for index, monitor in enumerate(monitors):
        if not isinstance(monitor, ActiveMonitor) or "local" not in monitor.locations:
            continue
        base: PathKey = (section, index) if many else ()
        for path, host, port in hosts_of(monitor, base):
            refused = await _refused(host, port, guard)
            if refused is not None:
                message = (
                    f"refused by the SSRF guard: {refused} (the hub probes public addresses "
                    "only; security.allow_internal can allow it)"
                )
                problems.append(Problem(json_pointer(path), message))
    return problems


async def _refused(host: str, port: int, guard: Guard) -> str | None:
    """Why the guard refuses the host, or None. A name that does not resolve (yet, or not from
    here) is not refused: its checks fail with `dns`, and the guard is checked again at every
    connection."""
    host = host.strip("[]")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = await system_lookup(host, port)
        except (OSError, UnicodeError):
            return None
        addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in found]
    for address in addresses:
        if not guard.permits(host, address):
            return f"{host}: {address} is not a public address"
    return None
