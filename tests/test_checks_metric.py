"""The metric check: one number from a (fake, but real HTTP) Prometheus API or a JSON document."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.procs import free_port
from tests.receivers import poll_until
from tests.targets import HttpTarget, Response, monitor, timed_check
from uptally import __version__
from uptally.checks.base import ErrorCode
from uptally.checks.registry import run_check

MARGIN = 0.5
QUERY = 'sum(rate(webhook_delivered_total{result="ok"}[24h])) / sum(rate(webhook_total[24h])) * 100'


def vector(value: str) -> dict[str, Any]:
    sample = {"metric": {"job": "notifier"}, "value": [1_700_000_000.0, value]}
    return {"status": "success", "data": {"resultType": "vector", "result": [sample]}}


def prometheus(target: HttpTarget, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "metric",
        "source": "prometheus",
        "url": target.url(),
        "query": QUERY,
        "timeout": "1s",
        "expect": ["value >= 99"],
        **fields,
    }


async def test_a_prometheus_value_above_the_threshold_is_up() -> None:
    async with HttpTarget({"/api/v1/query": Response(200, vector("99.73"))}) as target:
        result = await run_check(monitor(**prometheus(target)), location="eu-west")
    assert result.ok, result.message
    (request,) = target.requests
    assert request.method == "GET"
    assert request.path == "/api/v1/query"
    assert request.query == {"query": [QUERY]}
    assert request.headers["user-agent"] == f"uptally/{__version__} (+location=eu-west)"


async def test_a_prometheus_value_below_the_threshold_is_down_with_the_value() -> None:
    async with HttpTarget({"/api/v1/query": Response(200, vector("97.2"))}) as target:
        result, _ = await timed_check(**prometheus(target))
    assert result.error == ErrorCode.ASSERTION
    assert result.message == "value is 97.2, expected >= 99"


async def test_a_prometheus_base_url_with_a_path_and_trailing_slash_is_joined() -> None:
    async with HttpTarget({"/prom/api/v1/query": Response(200, vector("100"))}) as target:
        result, _ = await timed_check(**prometheus(target, url=target.url("/prom/")))
    assert result.ok, result.message


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "scalar", "result": [1_700_000_000.0, "99.5"]},
        {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[1.0, "10"], [2.0, "99.5"]]}],
        },
    ],
    ids=["scalar", "matrix"],
)
async def test_scalar_and_matrix_results_are_read(data: dict[str, Any]) -> None:
    document = {"status": "success", "data": data}
    async with HttpTarget({"/api/v1/query": Response(200, document)}) as target:
        result, _ = await timed_check(**prometheus(target, expect=["value == 99.5"]))
    assert result.ok, result.message


async def test_a_query_without_samples_is_down() -> None:
    empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
    async with HttpTarget({"/api/v1/query": Response(200, empty)}) as target:
        result, _ = await timed_check(**prometheus(target))
    assert result.error == ErrorCode.ASSERTION
    assert "no samples" in result.message


# What Prometheus 2.x/3.x answers (HTTP 400) to `sum(rate(x[5m])) by` (its documented format:
# https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview).
BAD_QUERY = {
    "status": "error",
    "errorType": "bad_data",
    "error": 'invalid parameter "query": 1:23: parse error: unexpected end of input in grouping',
}


async def test_an_invalid_query_reports_prometheus_own_error() -> None:
    async with HttpTarget({"/api/v1/query": Response(400, BAD_QUERY)}) as target:
        status_result, _ = await timed_check(**prometheus(target))
        target.routes["/api/v1/query"] = Response(200, BAD_QUERY)
        error_result, _ = await timed_check(**prometheus(target))
    assert status_result.error == ErrorCode.STATUS
    assert status_result.message == (
        'Prometheus answered HTTP 400: bad_data: invalid parameter "query": '
        "1:23: parse error: unexpected end of input in grouping"
    )
    assert error_result.error == ErrorCode.PROTOCOL
    assert "bad_data: invalid parameter" in error_result.message


def series(*values: str) -> dict[str, Any]:
    result = [
        {"metric": {"__name__": "up", "instance": f"i{n}"}, "value": [1_700_000_000.0, value]}
        for n, value in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


async def test_several_series_are_an_error_unless_the_monitor_says_how_to_combine_them() -> None:
    async with HttpTarget({"/api/v1/query": Response(200, series("1", "0", "1"))}) as target:
        several, _ = await timed_check(**prometheus(target, expect=["value == 1"]))
        combined = {
            how: (await timed_check(**prometheus(target, combine=how, expect=["value >= 0"])))[0]
            for how in ("min", "max", "sum", "avg")
        }
    assert several.error == ErrorCode.ASSERTION
    assert several.message.startswith(
        'the query returned 3 series (up{instance="i0"}, up{instance="i1"}, up{instance="i2"})'
    )
    assert "combine: min | max | sum | avg" in several.message
    assert {how: r.ok for how, r in combined.items()} == dict.fromkeys(combined, True)
    async with HttpTarget({"/api/v1/query": Response(200, series("1", "0", "1"))}) as target:
        low, _ = await timed_check(**prometheus(target, combine="min", expect=["value == 1"]))
        total, _ = await timed_check(**prometheus(target, combine="sum", expect=["value == 2"]))
    assert low.message == "value is 0.0, expected == 1"
    assert total.ok, total.message


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "vector", "result": [{"metric": {}}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "not a number"]}]},
        {"resultType": "scalar", "result": None},
        {"resultType": "streams", "result": []},
        "nonsense",
    ],
    ids=["no-value", "not-a-number", "null-scalar", "unknown-type", "not-an-object"],
)
async def test_a_malformed_prometheus_answer_is_a_protocol_failure(data: Any) -> None:
    document = {"status": "success", "data": data}
    async with HttpTarget({"/api/v1/query": Response(200, document)}) as target:
        result, _ = await timed_check(**prometheus(target))
    assert result.error == ErrorCode.PROTOCOL, result.message


async def test_a_json_field_is_read_by_path() -> None:
    document = {"data": {"rate": 99.95, "window": "24h"}}
    async with HttpTarget({"/stats": Response(200, document)}) as target:
        result, _ = await timed_check(
            kind="metric",
            source="json",
            url=target.url("/stats"),
            path="json.data.rate",
            timeout="1s",
            expect=["value >= 99"],
        )
    assert result.ok, result.message
    assert target.requests[0].headers["user-agent"].startswith(f"uptally/{__version__} ")


async def test_a_json_field_given_as_a_string_is_compared_as_a_number() -> None:
    async with HttpTarget({"/stats": Response(200, {"data": {"rate": "98.5"}})}) as target:
        result, _ = await timed_check(
            kind="metric",
            source="json",
            url=target.url("/stats"),
            path="json.data.rate",
            timeout="1s",
            expect=["value >= 99"],
        )
    assert result.error == ErrorCode.ASSERTION
    assert result.message == 'value is "98.5", expected >= 99'


async def test_a_missing_json_field_is_down() -> None:
    async with HttpTarget({"/stats": Response(200, {"data": {}})}) as target:
        result, _ = await timed_check(
            kind="metric",
            source="json",
            url=target.url("/stats"),
            path="json.data.rate",
            timeout="1s",
            expect=["value >= 99"],
        )
    assert result.error == ErrorCode.ASSERTION
    assert result.message.startswith("no value")


async def test_headers_are_sent_to_the_metric_source() -> None:
    async with HttpTarget({"/stats": Response(200, {"data": {"rate": 100}})}) as target:
        result, _ = await timed_check(
            kind="metric",
            source="json",
            url=target.url("/stats"),
            path="json.data.rate",
            headers={"Authorization": "Bearer grafana"},
            timeout="1s",
            expect=["value == 100"],
        )
    assert result.ok, result.message
    assert target.requests[0].headers["authorization"] == "Bearer grafana"


async def test_a_slow_metric_source_times_out() -> None:
    async with HttpTarget({"/api/v1/query": Response(200, vector("100"), delay=3)}) as target:
        result, elapsed = await timed_check(**prometheus(target, timeout="500ms"))
    assert result.error == ErrorCode.TIMEOUT
    assert elapsed < 0.5 + MARGIN


# -- against a real Prometheus (Debian package `prometheus`) ---------------------------------

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
async def real_prometheus(tmp_path: Path) -> AsyncIterator[str]:
    """A Prometheus server on 127.0.0.1 with an empty TSDB in tmp (no scraping needed: the
    queries below make their own series)."""
    if PROMETHEUS is None:
        if os.environ.get("UPTALLY_REQUIRE_PROMETHEUS") == "1":  # CI installs it
            pytest.fail("prometheus is required (apt-get install prometheus)")
        pytest.skip("the prometheus binary is not installed (Debian package prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{base}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return process.returncode is not None  # died: stop waiting (asserted below)

            await poll_until(ready, timeout=30, every=0.1)
        assert process.returncode is None, "prometheus exited at start"
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


TWO_SERIES = (
    'label_replace(vector(3), "replica", "a", "", "")'
    ' or label_replace(vector(5), "replica", "b", "", "")'
)


async def test_a_real_prometheus_rejecting_a_query_is_reported_in_its_own_words(
    real_prometheus: str,
) -> None:
    spec = {"kind": "metric", "source": "prometheus", "url": real_prometheus, "timeout": "5s"}
    bad, _ = await timed_check(**spec, query="sum(rate(up[5m])) by", expect=["value > 0"])
    assert bad.error == ErrorCode.STATUS
    assert bad.message.startswith("Prometheus answered HTTP 400: bad_data: "), bad.message
    assert "parse error" in bad.message
    several, _ = await timed_check(**spec, query=TWO_SERIES, expect=["value > 0"])
    assert several.error == ErrorCode.ASSERTION
    assert several.message.startswith('the query returned 2 series ({replica="a"}'), several.message
    biggest, _ = await timed_check(**spec, query=TWO_SERIES, combine="max", expect=["value == 5"])
    assert biggest.ok, biggest.message
    total, _ = await timed_check(**spec, query=TWO_SERIES, combine="sum", expect=["value == 8"])
    assert total.ok, total.message
