"""`uptally config export` and `config apply`: the plan is ordered and minimal, apply makes the
database match a file in one audited transaction (or refuses it whole), a running serve follows,
and every example config survives export -> validate and export -> apply --dry-run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from tests.procs import run_cli, serving
from uptally.audit.log import AuditFilter, list_entries
from uptally.cli import app
from uptally.config.managed import COMPONENT, MONITOR
from uptally.managed.plan import Action, FieldChange, Stored, plan
from uptally.store import channels as channel_store
from uptally.store.channels import StoredChannel
from uptally.store.database import Database

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))
TOKEN = "adm-4Kp9TzQw2Lx7Vn3Rb8Jc"

CONFIG = """\
site: {title: Two sources}
monitors:
  - id: filed
    kind: tcp
    host: 127.0.0.1
    port: 9
    interval: 1h
components:
  - id: platform
    monitors: [filed]
status_pages:
  - id: inside
    path: /inside
    title: Inside
    components: [platform]
"""

APPLIED = """\
monitors:
  - id: shop
    kind: http
    url: http://127.0.0.1:9/shop
    interval: 60s
    headers: {Authorization: "Bearer ${secret:shop-token}"}
  - id: api
    kind: tcp
    host: 127.0.0.1
    port: 9
    interval: 1h
components:
  - id: store
    name: Store
    monitors: [shop, filed]
"""


# -- the plan ------------------------------------------------------------------------------------


def test_the_plan_writes_monitors_before_components_and_deletes_them_after() -> None:
    current = {
        MONITOR: {"old": Stored({"id": "old"}, 3), "api": Stored({"id": "api", "x": 1}, 2)},
        COMPONENT: {"gone": Stored({"id": "gone"}, 1)},
    }
    desired = {
        MONITOR: {"api": {"id": "api", "x": 2}, "new": {"id": "new"}},
        COMPONENT: {"web": {"id": "web", "monitors": ["new"]}},
    }
    steps = plan(current, desired, prune=(MONITOR, COMPONENT))
    assert [(s.action, s.kind.name, s.id, s.version) for s in steps] == [
        (Action.UPDATE, "monitor", "api", 2),
        (Action.CREATE, "monitor", "new", 0),
        (Action.CREATE, "component", "web", 0),
        (Action.DELETE, "component", "gone", 1),
        (Action.DELETE, "monitor", "old", 3),
    ]
    assert steps[0].fields() == [FieldChange("/x", 1, 2)]


def test_the_plan_of_equal_documents_is_empty() -> None:
    same = {MONITOR: {"a": Stored({"id": "a", "interval": "30000ms"}, 5)}}
    assert plan(same, {MONITOR: {"a": {"interval": "30000ms", "id": "a"}}}, (MONITOR,)) == []


def test_without_prune_objects_the_file_lacks_are_left_alone() -> None:
    current = {MONITOR: {"a": Stored({"id": "a"}, 1)}, COMPONENT: {"c": Stored({"id": "c"}, 1)}}
    assert plan(current, {}, prune=()) == []
    only_monitors = plan(current, {MONITOR: {}}, prune=(MONITOR,))
    assert [(s.action, s.id) for s in only_monitors] == [(Action.DELETE, "a")]


def test_nested_changes_are_named_by_pointer() -> None:
    steps = plan(
        {MONITOR: {"a": Stored({"id": "a", "headers": {"X": "1", "Y": "2"}}, 1)}},
        {MONITOR: {"a": {"id": "a", "headers": {"X": "1", "Z": "3"}}}},
    )
    assert steps[0].fields() == [
        FieldChange("/headers/Y", "2", None),
        FieldChange("/headers/Z", None, "3"),
    ]


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with config.yaml, and the database (SQLite in it, or PostgreSQL)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPTALLY_DATA_DIR", raising=False)
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("UPTALLY_DATABASE_URL", db_url)
    else:
        monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "apply.yaml").write_text(APPLIED)
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["config", *args, "--config", "config.yaml", "--data-dir", "."]
    )
    return result.exit_code, result.output


async def audit_actions(db_url: str) -> list[tuple[str, str, str]]:
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            entries = await list_entries(conn, AuditFilter(limit=100))
    finally:
        await db.close()
    return sorted((e.actor.split(":")[0], e.action, e.target) for e in entries)


def test_apply_creates_then_finds_nothing_to_do(site: Path, db_url: str) -> None:
    code, output = cli("apply", "apply.yaml", "--dry-run")
    assert code == 0, output
    assert output.splitlines()[:3] == ["+ monitor api", "+ monitor shop", "+ component store"]
    assert "dry run: nothing changed" in output
    assert cli("export", "--source", "db")[1].strip() == "# uptally config export --source db\n{}"

    code, output = cli("apply", "apply.yaml")
    assert code == 0, output
    assert "applied 3 changes (3 to create)" in output
    assert asyncio.run(audit_actions(db_url)) == [
        ("cli", "component.created", "component:store"),
        ("cli", "monitor.created", "monitor:api"),
        ("cli", "monitor.created", "monitor:shop"),
    ]
    code, output = cli("apply", "apply.yaml")
    assert (code, output.strip()) == (0, "no changes")

    code, exported = cli("export", "--source", "db")
    assert code == 0
    assert "${secret:shop-token}" in exported  # a reference stays a reference
    assert exported == cli("export", "--source", "db")[1]  # byte for byte
    assert exported.index("id: api") < exported.index("id: shop")


def test_apply_shows_updates_by_field_and_prunes_with_prune_only(site: Path) -> None:
    assert cli("apply", "apply.yaml")[0] == 0
    changed = APPLIED.replace("interval: 60s", "interval: 30s").replace(
        "  - id: api\n    kind: tcp\n    host: 127.0.0.1\n    port: 9\n    interval: 1h\n", ""
    )
    Path("apply.yaml").write_text(changed)
    code, output = cli("apply", "apply.yaml")
    assert code == 0, output
    assert output.splitlines()[0] == "~ monitor shop: /interval (default) -> 30s"
    assert "- monitor api" not in output
    code, output = cli("apply", "apply.yaml", "--prune")
    assert code == 0, output
    assert output.splitlines()[0] == "- monitor api"
    assert "id: api" not in cli("export", "--source", "db")[1]


def test_an_invalid_file_is_refused_whole_at_its_lines(site: Path) -> None:
    Path("bad.yaml").write_text(
        "monitors:\n"
        "  - id: fine\n    kind: tcp\n    host: 127.0.0.1\n    port: 9\n"
        "  - id: broken\n    kind: http\n    url: http://127.0.0.1:9/\n    interval: soon\n"
        "components:\n  - id: c\n    monitors: [nowhere]\n"
    )
    code, output = cli("apply", "bad.yaml")
    assert code == 2
    lines = output.splitlines()
    assert any(line.startswith("bad.yaml:9: monitors[1].interval: ") for line in lines), output
    assert any(line.startswith("bad.yaml:12: components[0].monitors[0]: ") for line in lines)
    assert cli("export", "--source", "db")[1].endswith("{}\n")  # nothing half-applied


def test_a_provisioned_object_is_refused_naming_where_the_file_declares_it(site: Path) -> None:
    Path("mine.yaml").write_text(
        "monitors:\n  - id: filed\n    kind: tcp\n    host: 127.0.0.1\n    port: 10\n"
    )
    code, output = cli("apply", "mine.yaml")
    assert code == 2
    assert output.strip() == (
        "mine.yaml:2: monitors[0].id: monitor 'filed' is provisioned by config.yaml:3: "
        "change it there"
    )


def test_a_monitor_a_kept_component_names_cannot_be_pruned(site: Path) -> None:
    assert cli("apply", "apply.yaml")[0] == 0
    Path("none.yaml").write_text("monitors: []\n")
    code, output = cli("apply", "none.yaml", "--prune")
    assert code == 2
    assert output.strip() == "none.yaml: monitor 'shop' is still used by components/store"
    assert "id: shop" in cli("export", "--source", "db")[1]  # nothing deleted
    Path("none.yaml").write_text("monitors: []\ncomponents: []\n")
    code, output = cli("apply", "none.yaml", "--prune")
    assert code == 0, output
    assert output.splitlines()[:3] == ["- component store", "- monitor api", "- monitor shop"]


def test_a_component_a_channel_made_through_the_api_routes_by_cannot_be_pruned(
    site: Path, db_url: str
) -> None:
    assert cli("apply", "apply.yaml")[0] == 0

    async def add_channel() -> None:
        db = Database(db_url)
        try:
            async with db.begin() as conn:
                channel = StoredChannel(
                    "pager",
                    "enc:v1:not-opened-here",
                    None,
                    ["incident.*"],
                    ["store"],
                    [],
                    0,
                    0,
                    "t",
                )
                await channel_store.save_channel(conn, channel)
        finally:
            await db.close()

    asyncio.run(add_channel())
    Path("none.yaml").write_text("monitors: []\ncomponents: []\n")
    code, output = cli("apply", "none.yaml", "--prune")
    assert code == 2
    assert output.strip() == "none.yaml: component 'store' is still used by channels/pager"
    assert "id: store" in cli("export", "--source", "db")[1]  # nothing deleted


def test_an_id_the_file_takes_over_is_the_files_in_export_and_refused_in_apply(
    site: Path,
) -> None:
    assert cli("apply", "apply.yaml")[0] == 0
    adopting = CONFIG.replace(
        "site: {title: Two sources}\n",
        "site: {title: Two sources}\nprovisioning: adopt\n",
    ).replace(
        "components:\n",
        "  - id: api\n    kind: tcp\n    host: 127.0.0.1\n    port: 10\ncomponents:\n",
        1,
    )
    Path("config.yaml").write_text(adopting)
    code, exported = cli("export", "--source", "all")
    assert code == 0, exported
    assert exported.count("id: api\n") == 1
    assert "port: 10" in exported
    assert "config.yaml:9: monitor 'api' is also managed in the database" in exported
    code, output = cli("apply", "apply.yaml")
    assert code == 2
    assert output.strip() == (
        "apply.yaml:7: monitors[1].id: monitor 'api' is provisioned by config.yaml:9: "
        "change it there"
    )


def test_export_all_merges_both_sources_and_validates(site: Path) -> None:
    assert cli("apply", "apply.yaml")[0] == 0
    code, exported = cli("export", "--source", "all")
    assert code == 0, exported
    Path("all.yaml").write_text(exported)
    check = CliRunner().invoke(app, ["validate", "--config", "all.yaml"])
    assert check.exit_code == 0, check.output
    assert "(3 monitors, 2 components" in check.output


def test_export_keeps_env_references_where_the_field_takes_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOP_HOST", "10.1.2.3")
    Path("env.yaml").write_text(
        "monitors:\n"
        "  - id: shop\n    kind: http\n    url: http://${env:SHOP_HOST}/health\n"
        "  - id: port\n    kind: tcp\n    host: 127.0.0.1\n    port: ${env:SHOP_PORT:-9}\n"
    )
    result = CliRunner().invoke(app, ["config", "export", "--source", "file", "-c", "env.yaml"])
    assert result.exit_code == 0, result.output
    assert "url: http://${env:SHOP_HOST}/health" in result.stdout
    assert "10.1.2.3" not in result.stdout
    assert "port: 9\n" in result.stdout  # a port is a number: written expanded, and said so
    assert "env.yaml:8: monitors[1].port: written expanded" in result.output


# -- every example -------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_example_survives_export_validate_and_apply_dry_run(
    example: Path, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    Path("uptally.db").write_bytes(sqlite_template.read_bytes())
    runner = CliRunner()
    base = ["--config", str(example), "--data-dir", "."]
    for source in ("all", "file"):
        exported = runner.invoke(app, ["config", "export", "--source", source, *base])
        assert exported.exit_code == 0, exported.output
        Path(f"{source}.yaml").write_text(exported.stdout)
        check = runner.invoke(app, ["validate", "--config", f"{source}.yaml"])
        assert check.exit_code == 0, check.output
    db_part = runner.invoke(app, ["config", "export", "--source", "db", *base])
    Path("db.yaml").write_text(db_part.stdout)
    applied = runner.invoke(app, ["config", "apply", "db.yaml", "--dry-run", *base])
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.strip() == "no changes"


# -- with serve running --------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_running_serve_picks_an_apply_up_within_a_second(
    db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    (tmp_path / "apply.yaml").write_text(APPLIED)
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url
    data = ["--config", str(config), "--data-dir", str(tmp_path)]
    async with serving(config, tmp_path, env) as (url, _process), aiohttp.ClientSession() as http:

        async def seen(monitor: str) -> int:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"{url}/api/v1/monitors/{monitor}", headers=headers) as response:
                return response.status

        assert await seen("shop") == 404
        code, output = await run_cli(
            "config", "apply", str(tmp_path / "apply.yaml"), *data, env=env
        )
        assert code == 0, output
        async with asyncio.timeout(5):  # the follower reads every second
            while await seen("shop") != 200:
                await asyncio.sleep(0.05)
        code, output = await run_cli(
            "config", "apply", str(tmp_path / "apply.yaml"), *data, env=env
        )
        assert (code, output.strip()) == (0, "no changes")
