"""The `dns` check: resolve a name (A, AAAA, CNAME, MX, TXT, …) and judge the answers."""

from __future__ import annotations

import asyncio
import time
from functools import cache

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from uptally.checks.base import CheckContext, CheckResult, ErrorCode
from uptally.checks.judge import judge
from uptally.conditions import Facts, expand, parse_condition
from uptally.config.schema import DnsMonitor, DnsStep

DEFAULT_EXPECT = (parse_condition('rcode == "NOERROR"'), parse_condition("len(answers) > 0"))


@cache
def _resolver(server: str | None) -> dns.asyncresolver.Resolver:
    if server is None:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    host, port = _split_server(server)
    resolver.nameservers = [host]
    resolver.port = port
    return resolver


def _split_server(server: str) -> tuple[str, int]:
    if server.startswith("["):  # [::1]:53
        host, _, port = server[1:].partition("]:")
        return host, int(port or 53)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


async def run(spec: DnsMonitor | DnsStep, ctx: CheckContext) -> CheckResult:
    name = expand(spec.host, ctx.variables) if ctx.variables else spec.host
    started = time.perf_counter()
    remaining = max(0.001, ctx.deadline - asyncio.get_running_loop().time())
    rcode = "NOERROR"
    answers: list[str] = []
    try:
        answer = await _resolver(spec.server).resolve(
            name,
            spec.record,
            tcp=spec.protocol == "tcp",
            lifetime=remaining,
            raise_on_no_answer=False,
            search=False,
        )
        if answer.rrset is not None:
            answers = [_text(rdata) for rdata in answer.rrset]
    except dns.resolver.NXDOMAIN:
        rcode = "NXDOMAIN"
    except dns.resolver.NoNameservers as error:
        rcode = "SERVFAIL"
        if not any(c.root == "rcode" for c in spec.expect):
            return CheckResult.failure(
                ErrorCode.DNS, f"no name server answered for {name}: {error}", _ms(started)
            )
    except dns.exception.Timeout:
        return CheckResult.failure(
            ErrorCode.TIMEOUT,
            f"DNS query for {name} {spec.record} timed out after {remaining:.3g}s",
            _ms(started),
        )
    except dns.exception.DNSException as error:
        return CheckResult.failure(
            ErrorCode.DNS, f"DNS query for {name} {spec.record} failed: {error}", _ms(started)
        )
    latency = _ms(started)
    facts = Facts({"answers": answers, "rcode": rcode, "latency": latency})
    return judge(
        spec.expect or DEFAULT_EXPECT,
        facts,
        latency,
        (),
        ctx.variables,
        getattr(spec, "capture", None),
    )


def _text(rdata: object) -> str:
    rdtype = getattr(rdata, "rdtype", None)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return str(rdata.to_text()).rstrip(".") if hasattr(rdata, "to_text") else str(rdata)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
