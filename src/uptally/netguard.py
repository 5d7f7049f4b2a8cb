"""The SSRF guard: outgoing requests connect only to addresses that were checked.

A guarded target may reach public addresses only, unless `security.allow_internal` names its
host or address. The name is resolved once, every address is checked, and the connection goes
to one of those very addresses (the name is kept for TLS and the Host header): a name whose DNS
answers a public address to the check and 127.0.0.1 to the connection (DNS rebinding) cannot
slip through. See docs/trust.md, "Outgoing requests and secrets".
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses the name resolves to, as text
Lookup = Callable[[str, int], Awaitable[list[str]]]


class UnsafeTarget(ValueError):
    """The target is (or resolves to) an address the guard refuses."""


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _SHARED
    )


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def allowance(entry: str) -> IPNetwork | str:
    """One `security.allow_internal` entry: a network (an address is a /32 or /128) or a name."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{entry!r} is neither an address, a network (CIDR) nor a host name")
    return name


_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True, slots=True)
class Guard:
    """Which internal targets are allowed after all: host names and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> Guard:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            found = allowance(entry)
            if isinstance(found, str):
                hosts.add(found)
            else:
                networks.append(found)
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return is_public(address) or any(address in network for network in self.networks)


async def system_lookup(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _addresses(host: str, port: int, lookup: Lookup) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await lookup(host, port)
    except (OSError, UnicodeError) as error:
        raise UnsafeTarget(f"{host}: cannot resolve ({error})") from None
    return [ipaddress.ip_address(text.split("%", 1)[0]) for text in found]


async def resolve(
    host: str, port: int, guard: Guard | None = None, lookup: Lookup = system_lookup
) -> list[IPAddress]:
    """The host's addresses, resolved once; UnsafeTarget if the guard refuses any of them.

    Every address is checked (a name with one public and one private address is refused), so
    that whichever one a client connects to was allowed.
    """
    guard = guard or Guard()
    host = host.strip("[]")
    addresses = await _addresses(host, port, lookup)
    if not addresses:
        raise UnsafeTarget(f"{host}: no address")
    for address in addresses:
        if not guard.permits(host, address):
            raise UnsafeTarget(f"{host}: {address} is not a public address")
    return list(dict.fromkeys(addresses))


async def check_host(host: str, port: int = 443, guard: Guard | None = None) -> list[str]:
    """The host's addresses if the guard allows all of them; raise UnsafeTarget otherwise."""
    return sorted({str(address) for address in await resolve(host, port, guard)})


def url_host(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; UnsafeTarget if it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"not an http(s) URL with a host: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget(f"invalid port in {url!r}") from None
    return parts.hostname, port


async def check_url(url: str, guard: Guard | None = None) -> list[str]:
    """Check the host of an http(s) URL (see check_host)."""
    host, port = url_host(url)
    return await check_host(host, port, guard)


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for guarded sessions: resolve once, check, connect to those addresses.

    aiohttp keeps the name for TLS (SNI, certificate) and the Host header.
    """

    def __init__(self, guard: Guard, lookup: Lookup = system_lookup) -> None:
        self.guard = guard
        self.lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port, self.guard, self.lookup)
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET if address.version == 4 else socket.AF_INET6,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
            if wanted is None or address.version == wanted
        ]

    async def close(self) -> None:
        pass


def http_session(
    guard: Guard | None, lookup: Lookup = system_lookup, *, limit_per_host: int = 32
) -> aiohttp.ClientSession:
    """An aiohttp session for outgoing requests; with a guard, to checked addresses only.

    aiohttp hands only names to the resolver (addresses in the URL are used as they are), so
    a request to an address is checked before it starts.
    """
    if guard is None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=limit_per_host)
        return aiohttp.ClientSession(connector=connector, trust_env=False)
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=limit_per_host, resolver=PinnedResolver(guard, lookup)
    )
    trace = aiohttp.TraceConfig()

    async def check_address(
        _session: aiohttp.ClientSession,
        _context: object,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        host = (params.url.host or "").strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: PinnedResolver checks it
        if not guard.permits(host, address):
            raise UnsafeTarget(f"{host}: {address} is not a public address")

    trace.on_request_start.append(check_address)
    return aiohttp.ClientSession(connector=connector, trust_env=False, trace_configs=[trace])
