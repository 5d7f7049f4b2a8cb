"""The dns check against a real DNS server on 127.0.0.1 (UDP and TCP) built with dnspython."""

from __future__ import annotations

import pytest

from tests.procs import free_port
from tests.targets import DnsTarget, check, monitor, timed_check
from uptally.checks.base import ErrorCode
from uptally.config import ConfigError

MARGIN = 0.5
ZONE = {
    "example.test": {
        "A": ["1.2.3.4", "5.6.7.8"],
        "AAAA": ["2001:db8::1"],
        "MX": ["10 mail.example.test.", "20 backup.example.test."],
        "TXT": ['"v=spf1 -all"', '"part one " "part two"'],
    },
    "www.example.test": {"CNAME": ["example.test."]},
    "empty.example.test": {"TXT": ['"only text here"']},
}


def dns_monitor(server: DnsTarget, **fields: object) -> dict[str, object]:
    return {"kind": "dns", "server": server.address, "timeout": "2s", **fields}


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_an_a_record_is_resolved_over_udp_and_tcp(protocol: str) -> None:
    async with DnsTarget(ZONE) as server:
        result = await check(
            **dns_monitor(
                server,
                host="example.test",
                protocol=protocol,
                expect=['answers contains "1.2.3.4"', "len(answers) > 0", "len(answers) == 2"],
            )
        )
    assert result.ok, result.message
    assert server.queries == [("example.test.", "A", protocol)]


@pytest.mark.parametrize(
    ("record", "condition"),
    [
        ("AAAA", 'answers contains "2001:db8::1"'),
        ("MX", 'answers contains "10 mail.example.test"'),
        ("TXT", 'answers contains "v=spf1 -all"'),
        ("TXT", 'answers contains "part one part two"'),
    ],
)
async def test_other_record_types_are_resolved(record: str, condition: str) -> None:
    async with DnsTarget(ZONE) as server:
        result = await check(
            **dns_monitor(server, host="example.test", record=record, expect=[condition])
        )
    assert result.ok, result.message


async def test_a_cname_is_answered_as_its_target() -> None:
    async with DnsTarget(ZONE) as server:
        cname = await check(
            **dns_monitor(
                server,
                host="www.example.test",
                record="CNAME",
                expect=['answers contains "example.test"'],
            )
        )
        followed = await check(
            **dns_monitor(server, host="www.example.test", expect=['answers contains "5.6.7.8"'])
        )
    assert cname.ok, cname.message
    assert followed.ok, followed.message


async def test_by_default_a_name_must_resolve_with_at_least_one_answer() -> None:
    async with DnsTarget(ZONE) as server:
        up = await check(**dns_monitor(server, host="example.test"))
        no_answer = await check(**dns_monitor(server, host="empty.example.test", record="A"))
        missing = await check(**dns_monitor(server, host="nope.example.test"))
    assert up.ok, up.message
    assert no_answer.error == ErrorCode.DNS
    assert "len(answers) is 0" in no_answer.message
    assert missing.error == ErrorCode.DNS
    assert "NXDOMAIN" in missing.message
    assert "nope.example.test" in missing.message


async def test_nxdomain_can_be_the_expected_answer() -> None:
    async with DnsTarget(ZONE) as server:
        result = await check(
            **dns_monitor(server, host="retired.example.test", expect=['rcode == "NXDOMAIN"'])
        )
    assert result.ok, result.message


async def test_an_unexpected_answer_is_an_assertion_failure() -> None:
    async with DnsTarget(ZONE) as server:
        result = await check(
            **dns_monitor(server, host="example.test", expect=['answers contains "9.9.9.9"'])
        )
    assert result.error == ErrorCode.ASSERTION
    assert "answers" in result.message
    assert "1.2.3.4" in result.message


async def test_a_servfail_is_down_with_the_answer_code() -> None:
    async with DnsTarget(ZONE, rcode="SERVFAIL") as server:
        result = await check(**dns_monitor(server, host="example.test"))
    assert result.error == ErrorCode.DNS
    assert "SERVFAIL" in result.message


async def test_a_refused_answer_code_can_be_expected() -> None:
    async with DnsTarget(ZONE, rcode="REFUSED") as server:
        result = await check(
            **dns_monitor(server, host="example.test", expect=['rcode == "REFUSED"'])
        )
    assert result.ok, result.message


async def test_a_truncated_udp_answer_is_retried_over_tcp() -> None:
    async with DnsTarget(ZONE, truncate_udp=True) as server:
        result = await check(
            **dns_monitor(server, host="example.test", expect=['answers contains "1.2.3.4"'])
        )
    assert result.ok, result.message
    assert [transport for _, _, transport in server.queries] == ["udp", "tcp"]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_a_server_that_never_answers_times_out(protocol: str) -> None:
    async with DnsTarget(ZONE, silent=True) as server:
        result, elapsed = await timed_check(
            **dns_monitor(server, host="example.test", protocol=protocol, timeout="500ms")
        )
    assert result.error == ErrorCode.TIMEOUT
    assert "example.test" in result.message
    assert server.address in result.message
    assert elapsed < 0.5 + MARGIN


def test_a_server_that_is_neither_an_address_nor_a_host_name_is_refused_by_the_config() -> None:
    for bad in ("ns1 example.test", "ns1.example.test:dns", "-ns.example.test", "1.2.3.4:70000"):
        with pytest.raises(ConfigError, match=r"server must be|invalid port"):
            monitor(kind="dns", host="example.test", server=bad, timeout="1s")


async def test_a_server_given_by_host_name_is_looked_up_at_check_time() -> None:
    async with DnsTarget(ZONE) as server:
        port = server.address.rsplit(":", 1)[1]
        result = await check(
            kind="dns",
            host="example.test",
            server=f"localhost:{port}",
            timeout="2s",
            expect=['answers contains "1.2.3.4"'],
        )
    assert result.ok, result.message


async def test_a_server_host_name_that_does_not_resolve_is_a_clear_dns_error() -> None:
    result = await check(
        kind="dns", host="example.test", server="ns1.nowhere.invalid", timeout="2s"
    )
    assert result.error == ErrorCode.DNS
    assert result.message.startswith("DNS server ns1.nowhere.invalid does not resolve"), (
        result.message
    )


async def test_a_refused_tcp_connection_is_connect_refused_and_said_plainly() -> None:
    port = free_port()  # nothing listens there
    result = await check(
        kind="dns", host="example.test", server=f"127.0.0.1:{port}", protocol="tcp", timeout="2s"
    )
    assert result.error == ErrorCode.CONNECT_REFUSED
    assert result.message == (
        f"DNS query for example.test A failed: 127.0.0.1:{port} (tcp): connection refused"
    )


async def test_latency_can_be_expected() -> None:
    async with DnsTarget(ZONE) as server:
        result = await check(**dns_monitor(server, host="example.test", expect=["latency < 1s"]))
    assert result.ok, result.message
