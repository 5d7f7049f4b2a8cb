"""A JSON body sent without `Content-Type: application/json` is answered with what to send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "content-type-token"
CONFIG = """
monitors: [{id: beat, kind: heartbeat, period: 1h}]
components: [{id: api, monitors: [beat]}]
"""
INCIDENT = b'{"title": "Errors", "impact": "major", "components": ["api"], "message": "Looking."}'


@pytest.fixture
async def base(tmp_path: Path, clock: FakeClock) -> AsyncIterator[str]:
    runtime = Runtime(
        config_from(CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db"),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url:
        yield url
    await runtime.stop()


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/x-www-form-urlencoded", "Content-Type: application/x-www-form-urlencoded"),
        ("text/plain", "Content-Type: text/plain"),
        (None, "no Content-Type"),
    ],
)
async def test_a_body_without_a_json_content_type_is_told_which_header_to_send(
    base: str, content_type: str | None, named: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session,
        session.post(base + "/api/v1/incidents", data=INCIDENT, headers=headers) as response,
    ):
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == (
        f"the body was not read as JSON ({named}): send Content-Type: application/json"
    )


async def test_the_same_body_as_json_is_accepted_and_a_bad_field_still_named(base: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/api/v1/incidents", data=INCIDENT, headers=headers) as r:
            assert r.status == 201
        async with session.post(
            base + "/api/v1/incidents", data=b'{"title": 5}', headers=headers
        ) as response:
            assert response.status == 422
            message = (await response.json())["error"]["message"]
    assert message.startswith("title: ")
    assert "Content-Type" not in message
