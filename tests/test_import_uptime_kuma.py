"""`uptally import uptime-kuma`: a kuma.db built by Uptime Kuma's own migrations and a 1.x JSON
backup become YAML that `uptally validate` accepts, with a report of what did not map and why;
--apply puts the monitors into a real data directory through `config apply`'s path."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from uptally.cli import app

DATA = Path(__file__).resolve().parent / "data" / "uptime_kuma"


def build_kuma_db(path: Path) -> Path:
    """Uptime Kuma's db/kuma.db template patched by its SQL migrations, then filled the way its
    UI stores things (column names and values as Uptime Kuma writes them)."""
    shutil.copyfile(DATA / "kuma.db", path)
    conn = sqlite3.connect(path)
    migrations = (DATA / "migrations.sql").read_text(encoding="utf-8")
    for patch in migrations.split("\n-- ==== FILE: ")[1:]:  # one file at a time, as Kuma does
        conn.executescript(patch.partition("\n")[2])
    conn.execute("INSERT INTO user (id, username, password, active) VALUES (1, 'admin', 'x', 1)")
    # The column Kuma 2.x's knex migration 2024-04-26-0000-snmp-monitor.js adds, as it adds it.
    conn.execute("ALTER TABLE monitor ADD COLUMN json_path_operator VARCHAR(255) DEFAULT NULL")
    slack = {
        "name": "Ops Slack", "type": "slack", "slackchannel": "#ops",
        "slackwebhookURL": "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/abcdefghijklmnopqrstuvwx",
    }  # fmt: skip
    notifications = [
        (1, "Ops Slack", slack),
        (2, "Discord", {"type": "discord", "discordWebhookUrl":
                        "https://discord.com/api/webhooks/112233445566778899/AbC-dEf_123"}),
        (3, "Telegram", {"type": "telegram", "telegramBotToken": "123456789:AAbbCCddEEff",
                         "telegramChatID": "-100200300"}),
        (4, "Mail", {"type": "smtp", "smtpHost": "smtp.example.com", "smtpPort": 465,
                     "smtpSecure": True, "smtpUsername": "kuma", "smtpPassword": "p@ss word",
                     "smtpFrom": "kuma@example.com", "smtpTo": "ops@example.com"}),
        (5, "Hook", {"type": "webhook", "webhookURL": "https://hooks.example.com/kuma",
                     "webhookContentType": "json"}),
        (6, "Pager", {"type": "PagerDuty", "pagerdutyIntegrationKey": "R0UTINGKEY",
                      "pagerdutyIntegrationUrl": "https://events.pagerduty.com/v2/enqueue"}),
        (7, "Gotify", {"type": "gotify", "gotifyserverurl": "https://gotify.example.com"}),
        (8, "Teams", {"type": "teams", "webhookUrl": "https://prod-12.westeurope.logic.azure.com:443"
                      "/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/invoke"
                      "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbCdEf12"}),
        (9, "Old Teams", {"type": "teams", "webhookUrl":
                          "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/1/2"}),
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO notification (id, name, active, user_id, is_default, config)"
        " VALUES (?, ?, 1, 1, 0, ?)",
        [(i, n, json.dumps(c)) for i, n, c in notifications],
    )
    columns = (
        "id, name, active, user_id, interval, url, type, hostname, port, keyword, maxretries,"
        " ignore_tls, upside_down, maxredirects, accepted_statuscodes_json, dns_resolve_type,"
        " dns_resolve_server, retry_interval, push_token, method, body, headers,"
        " basic_auth_user, basic_auth_pass, auth_method, invert_keyword, json_path,"
        " expected_value, timeout, parent, description"
    )
    ok = '["200-299"]'
    monitors = [
        (1, "API", 1, 1, 30, "https://api.example.com/health", "http", None, None, None, 2,
         1, 0, 0, '["200-299","304"]', "A", None, 10, None, "POST", '{"probe": true}',
         '{"X-Probe": "kuma"}', "ops", "s3cret", "basic", 0, None, None, 24, None, "The API"),
        (2, "Shop page", 1, 1, 60, "https://shop.example.com/", "keyword", None, None, "Error",
         0, 0, 0, 10, ok, "A", None, 60, None, "GET", None, None, None, None, None, 1, None,
         None, 48, None, None),
        (3, "Version", 1, 1, 60, "https://api.example.com/version", "json-query", None, None,
         None, 1, 0, 0, 10, ok, "A", None, 60, None, "GET", None, None, None, None, None, 0,
         "build.ok", "true", 0, None, None),
        (4, "Postgres port", 1, 1, 60, None, "port", "db.example.com", 5432, None, 3, 0, 0, 10,
         ok, "A", None, 20, None, "GET", None, None, None, None, None, 0, None, None, 48, None,
         None),
        (5, "Router", 1, 1, 60, None, "ping", "192.168.1.1", None, None, 0, 0, 0, 10, ok, "A",
         None, 60, None, "GET", None, None, None, None, None, 0, None, None, 48, None, None),
        (6, "Resolver", 0, 1, 300, None, "dns", "example.com", 53, None, 0, 0, 0, 10, ok,
         "MX", "9.9.9.9,1.1.1.1", 300, None, "GET", None, None, None, None, None, 0, None, None,
         48, None, None),
        (7, "Backup job", 1, 1, 86400, None, "push", None, None, None, 2, 0, 0, 10, ok, "A",
         None, 600, "pUshT0kenAbCdEf12345", "GET", None, None, None, None, None, 0, None, None,
         48, None, None),
        (8, "Game server", 1, 1, 60, None, "steam", "play.example.com", 27015, None, 0, 0, 0,
         10, ok, "A", None, 60, None, "GET", None, None, None, None, None, 0, None, None, 48,
         None, None),
        (9, "Backend", 1, 1, 60, None, "group", None, None, None, 0, 0, 0, 10, ok, "A", None,
         60, None, "GET", None, None, None, None, None, 0, None, None, 48, None, None),
        (10, "Must be down", 1, 1, 60, "https://old.example.com/", "http", None, None, None, 0,
         0, 1, 10, ok, "A", None, 60, None, "GET", None, None, None, None, None, 0, None, None,
         48, 9, None),
    ]  # fmt: skip
    marks = ", ".join("?" * len(monitors[0]))
    conn.executemany(f"INSERT INTO monitor ({columns}) VALUES ({marks})", monitors)
    conn.execute(
        "INSERT INTO monitor (id, name, user_id, interval, url, type, json_path,"
        " json_path_operator, expected_value) VALUES (11, 'Queue', 1, 60,"
        " 'https://api.example.com/queue', 'json-query', '$.queue.depth', '<', '100')"
    )
    conn.executemany(
        "INSERT INTO monitor_notification (monitor_id, notification_id) VALUES (?, ?)",
        [(1, 1), (2, 1), (4, 2), (1, 3), (7, 4), (1, 5), (1, 6)],
    )
    conn.executemany("INSERT INTO tag (id, name, color) VALUES (?, ?, ?)",
                     [(1, "env", "#059669"), (2, "team web", "#2563EB")])  # fmt: skip
    conn.executemany("INSERT INTO monitor_tag (monitor_id, tag_id, value) VALUES (?, ?, ?)",
                     [(1, 1, "prod"), (2, 1, "prod"), (2, 2, "")])  # fmt: skip
    conn.execute(
        "INSERT INTO status_page (id, slug, title, description, icon, theme, published,"
        " search_engine_index, show_tags, footer_text) VALUES"
        " (1, 'acme', 'Acme status', 'All of Acme', '/icon.svg', 'auto', 1, 1, 0, 'Thanks')"
    )
    conn.executemany(
        'INSERT INTO "group" (id, name, public, active, weight, status_page_id)'
        " VALUES (?, ?, 1, 1, ?, 1)",
        [(1, "Services", 1), (2, "Infrastructure", 2)],
    )
    conn.executemany(
        "INSERT INTO monitor_group (monitor_id, group_id, weight) VALUES (?, ?, ?)",
        [(1, 1, 1), (2, 1, 2), (4, 2, 1), (5, 2, 2)],
    )
    # As Uptime Kuma 1.23 stores them: recurring strategies carry the cron it generated.
    conn.executemany(
        "INSERT INTO maintenance (id, title, description, user_id, active, strategy,"
        " start_date, end_date, start_time, end_time, weekdays, days_of_month, interval_day,"
        " cron, timezone, duration) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, '[]', 1, ?, ?, ?)",
        [
            (1, "DB upgrade", "Writes pause", 1, "single", "2027-01-10 02:00:00",
             "2027-01-10 04:00:00", None, None, "[]", "", "Europe/Berlin", None),
            (2, "Weekly vacuum", "", 1, "recurring-weekday", "2026-12-01 00:00:00", None,
             "02:00", "03:30", "[7]", "0 2 * * 7", "UTC", 5400),
            (3, "By hand", "", 1, "manual", None, None, None, None, "[]", "", "UTC", None),
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO monitor_maintenance (monitor_id, maintenance_id) VALUES (?, ?)",
        [(4, 1), (4, 2), (1, 3)],
    )
    conn.commit()
    conn.close()
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def imported(source: Path, tmp_path: Path) -> tuple[dict[str, object], str]:
    """Import `source`, check that `uptally validate` takes the YAML; (document, report)."""
    code, text, report = run("import", "uptime-kuma", str(source))
    assert code == 0, report
    out = tmp_path / "imported.yaml"
    out.write_text(text, encoding="utf-8")
    code, _said, problems = run("validate", "--config", str(out))
    assert code == 0, problems + text
    return yaml.safe_load(text), " ".join(report.replace("│", " ").split())  # the table, as words


def by_id(items: object) -> dict[str, dict[str, object]]:
    assert isinstance(items, list)
    return {item["id"]: item for item in items}


def test_a_kuma_db_from_its_own_migrations_becomes_valid_yaml_with_a_report(
    tmp_path: Path,
) -> None:
    db = build_kuma_db(tmp_path / "kuma.db")
    before = db.read_bytes()
    doc, report = imported(db, tmp_path)
    assert db.read_bytes() == before  # read-only

    monitors = by_id(doc["monitors"])
    assert sorted(monitors) == [
        "api", "backup-job", "postgres-port", "queue", "resolver", "shop-page", "version",
    ]  # fmt: skip
    assert monitors["queue"]["expect"][-1] == "json.queue.depth < 100"
    api = monitors["api"]
    assert api["kind"] == "http"
    assert api["method"] == "POST"
    assert api["verify_tls"] is False
    assert (api["interval"], api["retry_interval"], api["timeout"], api["confirm"]) == (
        "30s", "10s", "24s", 3,
    )  # fmt: skip
    assert api["follow_redirects"] is False
    assert api["headers"] == {
        "X-Probe": "kuma", "Content-Type": "application/json",
        "Authorization": "Basic b3BzOnMzY3JldA==",
    }  # fmt: skip
    assert api["expect"] == [f"status in {[*range(200, 300), 304]}".replace("'", "")]
    assert api["tags"] == ["env:prod"]
    assert api["description"] == "The API"
    assert monitors["shop-page"]["expect"][-1] == 'body not contains "Error"'
    assert monitors["shop-page"]["tags"] == ["env:prod", "team-web"]
    assert monitors["version"]["expect"][-1] == "json.build.ok == true"
    assert (monitors["postgres-port"]["kind"], monitors["postgres-port"]["port"]) == ("tcp", 5432)
    assert monitors["postgres-port"]["confirm"] == 4
    resolver = monitors["resolver"]
    assert (resolver["kind"], resolver["record"], resolver["server"]) == ("dns", "MX", "9.9.9.9")
    assert resolver["enabled"] is False
    backup = monitors["backup-job"]
    assert (backup["kind"], backup["period"], backup["grace"], backup["token"]) == (
        "heartbeat", "86400s", "1200s", "pUshT0kenAbCdEf12345",
    )  # fmt: skip

    assert by_id(doc["components"])["postgres-port"]["group"] == "Infrastructure"
    assert by_id(doc["components"])["api"]["group"] == "Services"
    page = by_id(doc["status_pages"])["acme"]
    assert (page["path"], page["title"]) == ("/acme", "Acme status")
    assert page["components"] == ["api", "shop-page", "postgres-port"]

    windows = doc["maintenance"]
    assert isinstance(windows, list)
    assert len(windows) == 2
    assert windows[0]["start"] == "2027-01-10T02:00:00+01:00"
    assert windows[0]["end"]
    assert (windows[1]["cron"], windows[1]["duration"]) == ("0 2 * * 7", "5400s")

    channels = by_id(doc["notifications"]["channels"])  # type: ignore[index]
    assert channels["ops-slack"]["url"] == (
        "slack://T0ABCDEF1/B0ABCDEF2/abcdefghijklmnopqrstuvwx/ops"
    )
    assert channels["ops-slack"]["monitors"] == ["api", "shop-page"]
    assert channels["discord"]["url"] == "discord://112233445566778899/AbC-dEf_123"
    assert channels["telegram"]["url"] == "tgram://123456789:AAbbCCddEEff/-100200300"
    assert channels["mail"]["url"].startswith("mailtos://kuma:p%40ss%20word@smtp.example.com:465")
    assert channels["hook"]["url"] == "webhook+https://hooks.example.com/kuma"
    assert channels["teams"]["url"].startswith("https://prod-12.westeurope.logic.azure.com")
    assert "old-teams" not in channels
    assert "pager" not in channels
    assert "gotify" not in channels

    for said in (
        "monitor #5 (ping) monitor 'Router' left out uptally has no ICMP check",
        "monitor #8 (steam) monitor 'Game server' left out uptally has no steam check",
        "monitor #9 (group) monitor 'Backend' left out uptally has no monitor groups",
        "monitor 'Must be down' left out upside-down mode",
        "push URL approximated pings go to /ping/pUshT0kenAbCdEf12345",
        "only 9.9.9.9 is asked",
        "needs a REST API key that Uptime Kuma never stored",
        "type 'gotify' has no mapping here",
        "'By hand' left out 'manual' windows are started by hand",
        "footer_text left out",
        "monitor #5 was not imported",
        "not Kuma's {heartbeat, monitor, msg}",
        "'Old Teams' left out Apprise does not accept the URL built from its settings (teams)",
    ):
        assert said in report, said


def test_a_1x_json_backup_becomes_valid_yaml_and_says_what_it_lacks(tmp_path: Path) -> None:
    doc, report = imported(DATA / "backup-1.23.json", tmp_path)
    monitors = by_id(doc["monitors"])
    assert sorted(monitors) == ["mail-server", "nightly-backup", "website"]
    assert monitors["website"]["expect"] == [
        "status >= 200", "status <= 299", 'body contains "Welcome"',
    ]  # fmt: skip
    assert (monitors["website"]["confirm"], monitors["website"]["retry_interval"]) == (3, "20s")
    assert monitors["nightly-backup"]["token"] == "Qw7rT2yU9iO4pA6s"
    assert [c["id"] for c in doc["notifications"]["channels"]] == ["ops-slack"]  # type: ignore[index]
    assert "status pages, maintenance left out a 1.x JSON backup does not contain them" in report
    assert "monitor 'Plex' left out uptally does not watch Docker containers" in report
    assert "monitor 'Router' left out uptally has no ICMP check" in report


def test_apply_creates_the_managed_monitors_in_a_data_dir(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(sqlite_template, data_dir / "uptally.db")
    db = build_kuma_db(tmp_path / "kuma.db")

    code, out, err = run("import", "uptime-kuma", str(db), "--apply", "--data-dir", str(data_dir))
    assert code == 0, err
    assert "applied 10 changes (10 to create)" in out
    assert "not applied (sections of the config file): status_pages, maintenance" in err

    code, exported, err = run("config", "export", "--source", "db", "--data-dir", str(data_dir))
    assert code == 0, err
    stored = yaml.safe_load(exported)
    assert sorted(m["id"] for m in stored["monitors"]) == [
        "api", "backup-job", "postgres-port", "queue", "resolver", "shop-page", "version",
    ]  # fmt: skip
    assert sorted(c["id"] for c in stored["components"]) == ["api", "postgres-port", "shop-page"]

    code, out, err = run("import", "uptime-kuma", str(db), "--apply", "--data-dir", str(data_dir))
    assert (code, out.strip()) == (0, "no changes")


def test_a_file_that_is_not_uptime_kuma_is_refused_with_a_reason(tmp_path: Path) -> None:
    junk = tmp_path / "gatus.yaml"
    junk.write_text("endpoints: []\n")
    code, out, err = run("import", "uptime-kuma", str(junk))
    assert (code, out) == (2, "")
    assert "neither a SQLite kuma.db nor a JSON backup" in err
