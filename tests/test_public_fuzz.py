"""Hypothesis fuzzes the public routes the OpenAPI document leaves out (status pages, feeds,
badges, pings, subscribing, static files): odd paths, queries, bodies and headers, odd Unicode
included, over real HTTP. Any answer but a 5xx is fine. UPTALLY_FUZZ_EXAMPLES sets how many
requests per group of routes (default 100; e.g. 5000 for a long run)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.conftest import config_from, serve_app
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.statuspage.render import V2_DOCUMENTS
from uptally.store.database import Database
from uptally.web.app import create_app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("UPTALLY_FUZZ_EXAMPLES", "100"))  # per group of routes
CONFIG = """
site: {title: Fuzz}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/"}
  - {id: beat, kind: heartbeat, period: 1h, token: fuzz-beat-token-0123456789}
components:
  - {id: api, monitors: [api]}
status_pages:
  - {id: internal, title: Internal, path: /internal, private: true, components: [api]}
notifications:
  subscribers: {allow_private_webhooks: true, per_ip: 100000}
"""

# Text as it may arrive: any code point but lone surrogates (not encodable), control
# characters and odd scripts included.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
# Values that have broken parsers before: digits `str.isdigit` admits but `int` refuses, huge
# numbers, unbalanced brackets, dots, percent signs, NUL.
SPECIAL = ["", "..", "²", "٣", "-1", "9" * 30, "[::1", "%zz"]
# Numbers in any script: some are digits to `str.isdigit` and not to `int` ("²", "①").
numberish = st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=4)
odd_text = st.one_of(st.sampled_from(SPECIAL), numberish, any_text)
segment = st.one_of(odd_text, st.sampled_from(["api", "beat", "fuzz-beat-token-0123456789"]))
PAGES = [
    "/",
    "/history",
    "/incidents/{}",
    "/maintenance/{}",
    "/badge/{}/{}.svg",
    "/badge/api/{}.svg",
    "/feed.atom",
    "/feed.rss",
    "/api/v2/{}",
    *(f"/api/v2/{name}" for name in V2_DOCUMENTS),
    "/static/{}",
    "/static/local-times.js",
    "/favicon.ico",
    "/internal/{}",
    "/internal",
    "/{}",
]
PINGS = ["/ping/{}", "/ping/{}/{}", "/ping/fuzz-beat-token-0123456789/{}"]
LINKS = ["/subscribe/confirm", "/subscribe/unsubscribe"]
QUERY_KEYS = ["s", "e", "c", "t", "page", "period", "rid", "token", "x"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-encoded
    query: str
    headers: dict[str, str]
    body: bytes


def wire(text: str) -> str:
    """A header value whose bytes on the wire are the UTF-8 of `text`, without the control
    characters that HTTP forbids there (clients refuse to send them)."""
    kept = "".join(ch for ch in text if ch >= " " and ch != "\x7f")
    return kept.encode().decode("latin-1")


KINDS = ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "a/b; x"]
queries = st.one_of(
    st.tuples(*(st.tuples(st.just(key), odd_text) for key in "sect")).map(list),
    st.tuples(*(st.tuples(st.just(key), odd_text) for key in "st")).map(list),
    st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), any_text), odd_text), max_size=4),
)
webhooks = st.one_of(
    odd_text,
    odd_text.map(lambda v: f"http://{v}"),
    odd_text.map(lambda v: f"http://[{v}/"),
)
components = st.lists(st.one_of(st.just("api"), odd_text), max_size=3)
fields = st.one_of(
    st.fixed_dictionaries({"webhook": webhooks}),
    st.fixed_dictionaries({"email": odd_text}, optional={"components": components}),
    st.fixed_dictionaries(
        {},
        optional={
            "email": odd_text,
            "webhook": webhooks,
            "components": components,
            "token": odd_text,
        },
    ),
)
bodies = st.one_of(
    st.tuples(st.sampled_from(KINDS), st.binary(max_size=64)),
    fields.map(lambda f: ("application/json", json.dumps(f).encode())),
    fields.map(lambda f: ("application/x-www-form-urlencoded", urlencode(f, doseq=True).encode())),
)
HEADERS = {
    "Host": st.one_of(st.sampled_from(["evil.example", "[::1]:1", "x:99999"]), odd_text),
    "X-Forwarded-For": odd_text,
    "Accept-Encoding": st.sampled_from(["gzip", "br", "*"]),
    "If-None-Match": odd_text,
    "Cookie": odd_text.map(lambda v: f"uptally_form={v}"),
    "Authorization": odd_text.map(lambda v: f"Basic {v}"),
    "Access-Control-Request-Headers": odd_text,
}


@st.composite
def requests(draw: st.DrawFn, routes: list[str], methods: list[str]) -> Request:
    route = draw(st.sampled_from(routes))
    parts = [quote(draw(segment), safe="") for _ in range(route.count("{}"))]
    headers = {}
    kind, body = draw(bodies)
    if kind:
        headers["Content-Type"] = kind
    for name, values in HEADERS.items():
        if draw(st.booleans()):
            headers[name] = wire(draw(values))
    return Request(
        draw(st.sampled_from(methods)),
        route.format(*parts),
        urlencode(draw(queries)),
        headers,
        body,
    )


# Each group of routes gets its own examples, so that none is starved by the others.
GROUPS = {
    "pages": requests(PAGES, ["GET", "HEAD", "OPTIONS", "POST"]),
    "pings": requests(PINGS, ["GET", "POST", "HEAD", "PUT"]),
    "subscribing": requests(["/subscribe"], ["POST", "POST", "POST", "GET"]),
    "links": requests(LINKS, ["GET", "POST"]),
}


@pytest.fixture
async def base(tmp_path: Path) -> AsyncIterator[str]:
    """On SQLite only: the routes fuzzed here read and write little (schemathesis covers the
    API on both databases), and the suite stays short."""
    runtime = Runtime(
        config_from(CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, "fuzz-admin-token")) as url:
        yield url
    await runtime.stop()


async def send(http: aiohttp.ClientSession, base: str, request: Request) -> int:
    url = URL(base + request.path + (f"?{request.query}" if request.query else ""), encoded=True)
    async with http.request(
        request.method,
        url,
        headers=request.headers,
        data=request.body if request.method in ("POST", "PUT") else None,
        allow_redirects=False,
        skip_auto_headers=["Content-Type"],
    ) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("group", GROUPS)
async def test_no_public_route_answers_odd_input_with_a_server_error(base: str, group: str) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(auto_decompress=False) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=EXAMPLES <= 100,  # the suite's run is the same every time
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(GROUPS[group])
        def never_5xx(request: Request) -> None:
            status = asyncio.run_coroutine_threadsafe(send(http, base, request), loop).result(60)
            assert status < 500, request

        await asyncio.to_thread(never_5xx)
