"""The `dns` check: resolve a name (A, AAAA, CNAME, MX, TXT, …) and judge the answers."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from functools import cache

import dns.asyncresolver
import dns.exception
import dns.inet
import dns.nameserver
import dns.rdatatype
import dns.resolver

from uptally.checks import net
from uptally.checks.base import CheckContext, CheckFailed, CheckResult, ErrorCode
from uptally.checks.judge import captures_of, judge
from uptally.conditions import Facts, expand, parse_condition
from uptally.config.schema import DnsMonitor, DnsStep

DEFAULT_EXPECT = (parse_condition('rcode == "NOERROR"'), parse_condition("len(answers) > 0"))


@cache
def _resolver(addresses: tuple[str, ...] | None, port: int = 53) -> dns.asyncresolver.Resolver:
    if addresses is None:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(a, port) for a in addresses]
    resolver.port = port
    return resolver


async def _server_resolver(server: str | None) -> dns.asyncresolver.Resolver:
    """The resolver asking `server` (an address or a host name, looked up now by the system
    resolver, so a renumbered server is followed), or the system's own."""
    if server is None:
        return _resolver(None)
    host, port = _split_server(server)
    if dns.inet.is_address(host):
        _screen(host, [host])
        return _resolver((host,), port)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
        )
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise _BadServer(f"DNS server {server} does not resolve: {reason}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise _BadServer(f"DNS server {server} does not resolve")
    _screen(host, list(addresses))
    return _resolver(addresses, port)


class _BadServer(ValueError):
    pass


def _screen(host: str, addresses: list[str]) -> None:
    """The SSRF guard in effect (checks/net.py `guarded`) may refuse the server."""
    try:
        net.screen(host, addresses)
    except CheckFailed as refused:
        raise _BadServer(refused.message) from None


def _split_server(server: str) -> tuple[str, int]:
    server = server.strip()
    try:
        if server.startswith("["):  # [::1]:53
            host, _, port = server[1:].partition("]")
            return host, int(port.removeprefix(":") or 53)
        if server.count(":") == 1:
            host, port = server.split(":")
            return host, int(port)
    except ValueError:
        raise _BadServer(f"invalid port in server {server!r}") from None
    return server, 53


async def run(spec: DnsMonitor | DnsStep, ctx: CheckContext) -> CheckResult:
    name = expand(spec.host, ctx.variables) if ctx.variables else spec.host
    started = time.perf_counter()
    remaining = max(0.001, ctx.deadline - asyncio.get_running_loop().time())
    rcode = "NOERROR"
    answers: list[str] = []
    try:
        try:
            async with asyncio.timeout_at(ctx.deadline):
                resolver = await _server_resolver(spec.server)
        except TimeoutError:
            raise _BadServer(f"looking up DNS server {spec.server} timed out") from None
        remaining = max(0.001, ctx.deadline - asyncio.get_running_loop().time())
        started = time.perf_counter()  # the query is the target's time, not finding its server
        answer = await resolver.resolve(
            name,
            spec.record,
            tcp=spec.protocol == "tcp",
            lifetime=remaining,
            raise_on_no_answer=False,
            search=False,
        )
        if answer.rrset is not None:
            answers = [_text(rdata) for rdata in answer.rrset]
    except _BadServer as error:
        return CheckResult.failure(ErrorCode.DNS, str(error), _ms(started))
    except dns.resolver.NXDOMAIN:
        rcode = "NXDOMAIN"
    except dns.resolver.NoNameservers as error:
        failed_rcode, reason, refused = _failure(error)
        if failed_rcode is None or not any(c.root == "rcode" for c in spec.expect):
            return CheckResult.failure(
                ErrorCode.CONNECT_REFUSED if refused else ErrorCode.DNS,
                f"DNS query for {name} {spec.record} failed: {reason}",
                _ms(started),
            )
        rcode = failed_rcode
    except dns.exception.Timeout:
        where = f" from {spec.server}" if spec.server else ""
        return CheckResult.failure(
            ErrorCode.TIMEOUT,
            f"DNS query for {name} {spec.record}{where} timed out after {remaining:.3g}s",
            _ms(started),
        )
    except dns.exception.DNSException as error:
        return CheckResult.failure(
            ErrorCode.DNS, f"DNS query for {name} {spec.record} failed: {error}", _ms(started)
        )
    latency = _ms(started)
    facts = Facts({"answers": answers, "rcode": rcode, "latency": latency})
    result = judge(
        spec.expect or DEFAULT_EXPECT,
        facts,
        latency,
        (),
        ctx.variables,
        captures_of(spec),
    )
    if not result.ok and not spec.expect:  # the default expectations: the name must resolve
        where = f" from {spec.server}" if spec.server else ""
        return replace(
            result,
            error=ErrorCode.DNS,
            message=f"{name} {spec.record}{where}: {result.message}",
        )
    return result


def _failure(error: dns.resolver.NoNameservers) -> tuple[str | None, str, bool]:
    """The answer code the servers gave (e.g. SERVFAIL, REFUSED), if any, a reason, and
    whether every server refused the connection."""
    reasons = []
    rcode = None
    refusals = 0
    problems = error.kwargs.get("errors") or []
    for server, tcp, port, problem, _response in problems:
        where = _plain(server, port)
        if isinstance(problem, str):  # an answer code other than NOERROR/NXDOMAIN
            rcode = rcode or problem
            reasons.append(f"{where} answered {problem}")
            continue
        if isinstance(problem, ConnectionRefusedError):
            refusals += 1
            detail = "connection refused"
        else:
            detail = getattr(problem, "strerror", None) or str(problem) or type(problem).__name__
        reasons.append(f"{where}{' (tcp)' if tcp else ''}: {detail}")
    refused = bool(problems) and refusals == len(problems)
    return rcode, "; ".join(reasons) or "no name server answered", refused


def _plain(server: object, port: int) -> str:
    """A name server as people write it: 192.0.2.1:53, [2001:db8::1]:53."""
    address = str(getattr(server, "address", server))
    # dnspython names a server "Do53:192.0.2.1@53"
    address = address.removeprefix("Do53:").removesuffix(f"@{port}")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _text(rdata: object) -> str:
    rdtype = getattr(rdata, "rdtype", None)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return str(rdata.to_text()).rstrip(".") if hasattr(rdata, "to_text") else str(rdata)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
