"""Tags on monitors (validated in the file, filtered on with AND) and the monitor list's sorts,
paged with cursors that keep their order."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.config.loader import ConfigError, parse_config
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-Tg4kP9wQz2Lm7Xv3Rb8Nc1Hd"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT = 60
NAMES = ("beta", "Alpha", "alpha", "Gamma", "")  # equal names (by case) tie on the id
DOWN = {3, 14, 25, 41}
UP = {1, 2, 8, 30, 44, 59}


def ident(i: int) -> str:
    return f"m{i:02d}"


def tags_of(i: int) -> list[str]:
    return (
        (["team:shop"] if i % 2 else [])
        + (["env/prod"] if i % 3 == 0 else [])
        + (["tier.1"] if i % 7 == 0 else [])
    )


def kind_of(i: int) -> str:
    return ("http", "tcp", "heartbeat")[i % 3]


def title_of(i: int) -> str:
    return NAMES[i % 5] or ident(i)


def config_text() -> str:
    lines = ["site: {title: Tagged}", "monitors:"]
    for i in reversed(range(COUNT)):  # the file's order is none of the list's
        name = f"name: {NAMES[i % 5]}, " if NAMES[i % 5] else ""
        tags = ", ".join(tags_of(i))
        body = {
            "http": f"url: 'http://127.0.0.1:9/{i}'",
            "tcp": f"host: db{i}.internal, port: 5432",
            "heartbeat": "period: 1h",
        }[kind_of(i)]
        lines.append(f"  - {{id: {ident(i)}, {name}kind: {kind_of(i)}, {body}, tags: [{tags}]}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def http(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Any, str]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/u.db")
    runtime = Runtime(
        config_from(config_text()), db, clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    number = 0
    for i in sorted(DOWN | UP):
        for _ in range(2):  # confirm: 2 by default
            number += 1
            ok = i in UP
            runtime.ingest.submit(
                Result(f"r{number}", ident(i), "local", clock.now_ms(), ok, 3.0, None, "")
            )
    await runtime.ingest.drained()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url
    await runtime.stop()


async def get(http: tuple[Any, str], query: str) -> tuple[int, Any]:
    session, base = http
    async with session.get(f"{base}/api/v1/monitors?{query}", headers=AUTH) as response:
        return response.status, await response.json()


async def walk(http: tuple[Any, str], query: str) -> list[list[str]]:
    """The ids of every page of a listing, following next_cursor."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        status, body = await get(http, query + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        pages.append([m["id"] for m in body["monitors"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) <= COUNT


def state_rank(i: int) -> int:
    return 0 if i in UP else 4 if i in DOWN else 2  # up, maintenance, unknown, degraded, down


EXPECTED = {
    "id": sorted(range(COUNT), key=ident),
    "name": sorted(range(COUNT), key=lambda i: (title_of(i).casefold(), ident(i))),
    "kind": sorted(range(COUNT), key=lambda i: (kind_of(i), ident(i))),
    "state": sorted(range(COUNT), key=lambda i: (state_rank(i), ident(i))),
}


# -- tags in the config file ---------------------------------------------------------------------


def test_tags_are_read_from_the_file_and_equal_lists_are_shared() -> None:
    config = config_from(config_text())
    by_id = {m.id: m for m in config.monitors}
    assert by_id["m21"].tags == ["team:shop", "env/prod", "tier.1"]
    assert by_id["m04"].tags == []
    assert by_id["m01"].tags is by_id["m05"].tags  # compacted: one list for equal lists
    assert by_id["m00"].tags is not by_id["m01"].tags


def errors(tags: str) -> list[str]:
    text = f"""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    tags:
{tags}"""
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "uptally.yaml")
    return raised.value.lines()


def test_bad_tags_are_reported_at_their_line() -> None:
    rule = "a tag is 1 to 64 letters, digits, '_', '.', '-', ':' or '/'"
    assert errors("      - team:shop\n      - bad tag\n") == [
        f"uptally.yaml:7: monitors[0].tags[1]: invalid value 'bad tag': {rule}"
    ]
    assert errors(f"      - ok\n      - ''\n      - {'x' * 65}\n") == [
        f"uptally.yaml:7: monitors[0].tags[1]: invalid value '': {rule}",
        f"uptally.yaml:8: monitors[0].tags[2]: invalid value '{'x' * 65}': {rule}",
    ]
    assert errors("      - env/prod\n      - tier.1\n      - env/prod\n") == [
        "uptally.yaml:8: monitors[0].tags[2]: duplicate tag 'env/prod' (already tags[0])"
    ]
    many = "".join(f"      - t{n}\n" for n in range(51))
    assert errors(many) == ["uptally.yaml:6: monitors[0].tags: at most 50 items, not 51"]
    assert errors("      {team: shop}\n") == [
        "uptally.yaml:6: monitors[0].tags: expected a list, not a mapping"
    ]


# -- the list ----------------------------------------------------------------------------------


async def test_the_list_shows_tags(http: tuple[Any, str]) -> None:
    status, body = await get(http, "q=m21")
    assert status == 200
    assert body["monitors"][0]["tags"] == ["team:shop", "env/prod", "tier.1"]
    session, base = http
    async with session.get(f"{base}/api/v1/monitors/m04", headers=AUTH) as response:
        assert (await response.json())["tags"] == []


async def test_the_tag_filter_lists_monitors_with_all_the_tags(http: tuple[Any, str]) -> None:
    shop = [ident(i) for i in range(COUNT) if "team:shop" in tags_of(i)]
    assert [i for p in await walk(http, "tag=team:shop&limit=7") for i in p] == shop
    both = [ident(i) for i in range(COUNT) if i % 2 and i % 3 == 0]
    assert await walk(http, "tag=team:shop,env/prod&limit=4") == [both[:4], both[4:8], both[8:]]
    assert await walk(http, "tag=env/prod,%20team:shop,tier.1") == [["m21"]]  # AND, any order
    assert await walk(http, "tag=env/prod,tier.1&sort=-id&limit=2") == [["m42", "m21"], ["m00"]]
    assert await walk(http, "tag=nobody-has-it") == [[]]
    assert await walk(http, "tag=team:shop&kind=heartbeat&state=up") == [["m59"]]


@pytest.mark.parametrize("sort", ["id", "-id", "name", "-name", "kind", "-kind", "state", "-state"])
async def test_each_sort_pages_through_exactly_the_one_page_order(
    http: tuple[Any, str], sort: str
) -> None:
    expected = [ident(i) for i in EXPECTED[sort.removeprefix("-")]]
    if sort.startswith("-"):
        expected.reverse()
    [whole] = await walk(http, f"sort={sort}&limit=1000")
    assert whole == expected
    for limit in (1, 7, 59, 60):
        pages = await walk(http, f"sort={sort}&limit={limit}")
        assert [i for p in pages for i in p] == expected  # no duplicates, no gaps
        assert all(len(p) == limit for p in pages[:-1])
    tagged = [i for i in expected if "tier.1" in tags_of(int(i[1:]))]
    assert [i for p in await walk(http, f"sort={sort}&tag=tier.1&limit=3") for i in p] == tagged


async def test_sort_by_state_puts_the_worst_first_descending(http: tuple[Any, str]) -> None:
    status, body = await get(http, "sort=-state&limit=5")
    assert status == 200
    assert [m["id"] for m in body["monitors"]] == ["m41", "m25", "m14", "m03", "m58"]
    assert [m["state"] for m in body["monitors"]] == ["down"] * 4 + ["unknown"]
    assert await walk(http, "sort=state&state=down,up&limit=3") == [
        ["m01", "m02", "m08"],
        ["m30", "m44", "m59"],
        ["m03", "m14", "m25"],
        ["m41"],
    ]


async def test_a_cursor_of_another_sort_answers_400(http: tuple[Any, str]) -> None:
    status, body = await get(http, "sort=name&limit=5")
    assert status == 200
    cursor = body["next_cursor"]
    for other in ("-name", "id", "state", "kind"):
        status, body = await get(http, f"sort={other}&cursor={cursor}")
        assert status == 400, body
        assert body["error"]["code"] == "bad_request"
        assert "sort=name" in body["error"]["message"]
    status, body = await get(http, f"cursor={cursor}")  # the default sort is id
    assert status == 400
    status, body = await get(http, f"sort=name&cursor={cursor}")
    assert status == 200
    assert body["monitors"][0]["id"] == ident(EXPECTED["name"][5])


def forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "sort=size",
        "sort=",
        "sort=-",
        "sort=--id",
        "sort=Name",
        "sort=id,name",
        "tag=",
        "tag=,",
        "tag=bad%20tag",
        f"tag={'x' * 65}",
        "sort=state&cursor=" + forged('m2:["state","down","m03"]'),
        "cursor=" + forged('m2:["id",""]'),
        "cursor=" + forged('m2:["id",1,"m03"]'),
        "cursor=" + forged("m2:{}"),
    ],
)
async def test_a_bad_sort_tag_or_cursor_answers_422_json(http: tuple[Any, str], query: str) -> None:
    status, body = await get(http, query)
    assert status == 422, body
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["message"]


async def test_a_cursor_from_before_sort_still_pages_by_id(http: tuple[Any, str]) -> None:
    status, body = await get(http, f"limit=2&cursor={forged('m1:m10')}")
    assert status == 200
    assert [m["id"] for m in body["monitors"]] == ["m11", "m12"]
