"""The SSRF guard: refuse targets that resolve to private, loopback or link-local addresses.

Off by default (a self-hosted uptally monitors its own network on purpose); turned on with
`security.ssrf_guard: true` for multi-tenant use, where anyone with a write token could
otherwise make the platform probe its neighbours or a cloud metadata service. It applies to
monitors created through the API. Every address a name resolves to is checked, so a name with
one public and one private address is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


async def check_host(host: str, port: int = 443) -> list[str]:
    """The host's addresses if all are public; raise UnsafeTarget otherwise (or if unresolvable)."""
    host = host.strip("[]")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as error:
            raise UnsafeTarget(f"{host}: cannot resolve ({error})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise UnsafeTarget(f"{host}: no address")
    for address in addresses:
        if not is_public(address):
            raise UnsafeTarget(f"{host}: {address} is not a public address")
    return sorted({str(address) for address in addresses})


async def check_url(url: str) -> list[str]:
    """Check the host of an http(s) URL (see check_host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"not an http(s) URL with a host: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget(f"invalid port in {url!r}") from None
    return await check_host(parts.hostname, port)
