"""The audit log: a hash chain written with each change; tampering is found and named."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path

import pytest

from tests.conftest import config_from
from tests.procs import run_cli
from uptally import audit
from uptally.audit.chain import ChainChecker, canonical
from uptally.audit.config import record_config
from uptally.store import audit as audit_store
from uptally.store import meta
from uptally.store.database import Database


async def _fill(db: Database, n: int) -> list[audit.Entry]:
    entries = []
    for i in range(1, n + 1):
        async with db.begin() as conn:
            entries.append(
                await audit.append(
                    conn, "token:abc", "outage.recorded", f"outage:{i}", {"n": i, "why": "é"}
                )
            )
    return entries


async def _verify(db: Database) -> audit.VerifyReport:
    async with db.connect() as conn:
        return await audit.verify(conn)


async def _sql(db: Database, *statements: str) -> None:
    async with db.begin() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


def test_an_entry_hash_can_be_recomputed_from_its_api_form() -> None:
    entry = audit.Entry(
        1,
        1_767_225_600_000,
        "cli:root",
        "token.created",
        "token:x",
        {"b": 1, "a": [1]},
        audit.GENESIS_HASH,
        "",
    )
    body = {key: value for key, value in entry.as_json().items() if key != "hash"}
    expected = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert body["at"] == "2026-01-01T00:00:00.000Z"
    assert (
        audit.entry_hash(
            1,
            entry.at,
            "cli:root",
            "token.created",
            "token:x",
            {"a": [1], "b": 1},
            audit.GENESIS_HASH,
        )
        == expected
    )
    assert canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'


async def test_appended_entries_form_a_chain_that_verifies(db: Database) -> None:
    entries = await _fill(db, 5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    report = await _verify(db)
    assert (report.ok, report.entries, report.head) == (True, 5, (5, entries[-1].hash))


async def test_an_empty_log_verifies(db: Database) -> None:
    report = await _verify(db)
    assert (report.ok, report.entries, report.head) == (True, 0, None)


async def test_an_entry_rolls_back_with_the_change_it_records(db: Database) -> None:
    await _fill(db, 2)

    async def failing_change() -> None:
        async with db.begin() as conn:
            await audit.append(conn, "system", "config.reloaded", "config", {})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    async with db.begin() as conn:
        entry = await audit.append(conn, "system", "config.reloaded", "config", {})
    assert entry.seq == 3
    assert (await _verify(db)).ok


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        (['UPDATE audit_log SET details = \'{"n":99,"why":"x"}\' WHERE seq = 3'], 3, "edited"),
        (["UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"], 2, "edited"),
        (["DELETE FROM audit_log WHERE seq = 3"], 3, "deleted"),
        (
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 100",
            ],
            3,
            "reordered",
        ),
        (["DELETE FROM audit_log WHERE seq = 5"], 5, "deleted"),
        (["UPDATE audit_log SET hash = prev_hash WHERE seq = 4"], 4, "edited"),
    ],
    ids=[
        "details-edited",
        "actor-edited",
        "middle-deleted",
        "reordered",
        "tail-deleted",
        "hash-edited",
    ],
)
async def test_tampering_with_rows_is_found_and_the_first_bad_entry_named(
    db: Database, tamper: list[str], bad_seq: int, words: str
) -> None:
    await _fill(db, 5)
    await _sql(db, *tamper)
    report = await _verify(db)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == bad_seq, str(report.problem)
    assert words in str(report.problem)


async def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_link(db: Database) -> None:
    entries = await _fill(db, 4)
    forged = audit.entry_hash(
        2, entries[1].at, "token:abc", "outage.recorded", "outage:2", {"n": 0}, entries[0].hash
    )
    await _sql(
        db,
        f"UPDATE audit_log SET details = '{{\"n\":0}}', hash = '{forged}' WHERE seq = 2",
    )
    report = await _verify(db)
    assert report.problem is not None
    assert report.problem.seq == 3
    assert "does not follow" in str(report.problem)


async def test_a_wholly_rewritten_chain_is_caught_by_an_anchor(db: Database) -> None:
    entries = await _fill(db, 3)
    anchor = audit.Anchor(2, entries[1].hash)
    # Rewrite everything consistently from entry 2 on, as someone with the database could.
    prev = entries[0].hash
    for entry in entries[1:]:
        forged = audit.entry_hash(
            entry.seq, entry.at, "intruder", entry.action, entry.target, entry.details, prev
        )
        await _sql(
            db,
            f"UPDATE audit_log SET actor = 'intruder', prev_hash = '{prev}', hash = '{forged}' "
            f"WHERE seq = {entry.seq}",
            f"UPDATE audit_head SET hash = '{forged}' WHERE seq = {entry.seq}",
        )
        prev = forged
    assert (await _verify(db)).ok  # consistent in itself…
    async with db.connect() as conn:
        report = await audit.verify(conn, (anchor,))
    assert report.problem is not None  # …but not with what was recorded elsewhere
    assert report.problem.seq == 2
    assert "anchor" in str(report.problem)


async def test_an_entry_appended_around_the_chain_head_is_found(db: Database) -> None:
    entries = await _fill(db, 3)
    last = entries[-1]
    at = last.at + 1
    forged = audit.entry_hash(4, at, "intruder", "token.created", "token:x", {}, last.hash)
    # Correctly hashed and linked, but written without moving the chain head.
    await _sql(
        db,
        "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) "
        f"VALUES (4, {at}, 'intruder', 'token.created', 'token:x', '{{}}', '{last.hash}', "
        f"'{forged}')",
    )
    report = await _verify(db)
    assert report.problem is not None
    assert report.problem.seq == 4
    assert "beyond the recorded head" in str(report.problem)


@pytest.mark.parametrize(
    ("details", "words"),
    [
        # json.loads keeps the last "n", so the hash still matches; another reader may not.
        ('{"n":99,"n":3,"why":"\\u00e9"}', "repeat the key 'n'"),
        ('{"n": 3, "why": "\\u00e9"}', "not in canonical JSON"),
    ],
    ids=["duplicate-key", "not-canonical"],
)
async def test_details_that_hash_alike_but_read_differently_are_found(
    db: Database, details: str, words: str
) -> None:
    await _fill(db, 4)
    await _sql(db, f"UPDATE audit_log SET details = '{details}' WHERE seq = 3")
    report = await _verify(db)
    assert report.problem is not None
    assert report.problem.seq == 3
    assert words in str(report.problem)


async def test_entries_appended_while_verifying_are_not_taken_for_forgeries(
    db: Database,
) -> None:
    await _fill(db, 3)
    async with db.connect() as conn:
        checker = ChainChecker(head=await audit_store.head(conn))
    await _fill(db, 2)  # a writer appends between reading the head and walking the log
    async with db.connect() as conn:
        async for row in audit_store.walk(conn):
            assert checker.feed(row)
        assert checker.finish(await audit_store.head(conn)) is None
    assert checker.count == 5


async def test_concurrent_appenders_keep_the_chain_linear(db: Database) -> None:
    async def writer(name: str) -> None:
        for i in range(8):
            async with db.begin() as conn:
                await audit.append(conn, f"token:{name}", "secret.set", f"secret:{i}", {})

    await asyncio.gather(*(writer(f"w{n}") for n in range(5)))
    report = await _verify(db)
    assert (report.ok, report.entries) == (True, 40)


async def test_entries_are_listed_and_filtered(db: Database) -> None:
    await _fill(db, 3)
    async with db.begin() as conn:
        await audit.append(conn, "cli:ops", "token.revoked", "token:t1", {}, at=2_000_000_000_000)
    async with db.connect() as conn:
        newest = await audit.list_entries(conn, audit.AuditFilter(limit=2))
        by_actor = await audit.list_entries(conn, audit.AuditFilter(actor="cli:ops"))
        by_prefix = await audit.list_entries(conn, audit.AuditFilter(action="token.*"))
        by_target = await audit.list_entries(conn, audit.AuditFilter(target="outage:2"))
        since = await audit.list_entries(conn, audit.AuditFilter(since=1_999_999_999_999))
        after = await audit.list_entries(conn, audit.AuditFilter(after=2, newest_first=False))
    assert [e.seq for e in newest] == [4, 3]
    assert [e.seq for e in by_actor] == [4]
    assert [e.seq for e in by_prefix] == [4]
    assert [e.seq for e in by_target] == [2]
    assert [e.seq for e in since] == [4]
    assert [e.seq for e in after] == [3, 4]


async def test_config_changes_are_recorded_by_id_without_values(db: Database) -> None:
    first = config_from("monitors: [{id: a, kind: heartbeat, period: 1h}]\n")
    second = config_from(
        "monitors: [{id: a, kind: heartbeat, period: 2h}, {id: b, kind: heartbeat, period: 1h}]\n"
        "notifications: {channels: [{id: ops, url: 'webhook+https://x.example/h',"
        " secret: s3cr3t-value}]}\n"
    )
    async with db.begin() as conn:
        loaded = await record_config(db, conn, first, audit.SYSTEM, "config.loaded")
        again = await record_config(db, conn, first, audit.SYSTEM, "config.loaded")
        changed = await record_config(db, conn, second, "token:x", "config.reloaded")
        stored = await meta.get(conn, "config_digests")
    assert loaded is not None
    assert loaded.details["changes"]["monitors"] == {"added": ["a"]}
    assert again is None
    assert changed is not None
    assert changed.details["changes"]["monitors"] == {"added": ["b"], "changed": ["a"]}
    assert changed.details["changes"]["channels"] == {"added": ["ops"]}
    assert "s3cr3t" not in json.dumps(changed.details) + (stored or "")


@pytest.mark.slow
async def test_audit_verify_exits_1_naming_the_entry_and_0_when_intact(tmp_path: Path) -> None:
    # Verification itself runs on both databases above; this is the command's exit codes.
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    env: dict[str, str] = {}
    data_dir = tmp_path
    try:
        await db.migrate()
        await _fill(db, 4)
        code, output = await run_cli("audit", "verify", "--data-dir", str(data_dir), env=env)
        assert code == 0, output
        assert "4 entries verified" in output
        await _sql(db, "DELETE FROM audit_log WHERE seq = 2")
    finally:  # a failure above must not leak the connection into the next test
        await db.close()
    code, output = await run_cli("audit", "verify", "--data-dir", str(data_dir), env=env)
    assert code == 1
    assert "entry 2: missing" in output
    code, output = await run_cli(
        "audit", "verify", "--data-dir", str(data_dir), "--anchor", "nonsense", env=env
    )
    assert code == 2


@pytest.mark.slow
async def test_a_signed_anchor_is_checked_and_a_forged_one_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    key = {"UPTALLY_SECRET_KEY": "a passphrase of some length"}
    other = {"UPTALLY_SECRET_KEY": "another passphrase entirely"}
    try:
        await db.migrate()
        entries = await _fill(db, 3)
    finally:
        await db.close()
    where = ("--data-dir", str(tmp_path))
    code, output = await run_cli("audit", "anchor", *where, env=key)
    assert code == 0, output
    anchor = output.strip().splitlines()[-1]
    seq, digest, signature = anchor.split(":")
    assert (int(seq), digest) == (3, entries[-1].hash)
    code, public = await run_cli("audit", "anchor", "--public-key", *where, env=key)
    assert code == 0, public
    public = public.strip().splitlines()[-1]

    code, output = await run_cli("audit", "verify", *where, "--anchor", anchor, env=key)
    assert code == 0, output
    # Without the secret key, the public key checks it.
    code, output = await run_cli(
        "audit", "verify", *where, "--anchor", anchor, "--public-key", public, env={}
    )
    assert code == 0, output
    # An anchor signed by another key, or with a signature moved onto another hash, is refused.
    code, foreign = await run_cli("audit", "anchor", *where, env=other)
    code, output = await run_cli(
        "audit", "verify", *where, "--anchor", foreign.strip().splitlines()[-1], env=key
    )
    assert code == 1
    assert "signature" in output
    moved = f"2:{entries[1].hash}:{signature}"
    code, output = await run_cli("audit", "verify", *where, "--anchor", moved, env=key)
    assert code == 1
    assert "signature" in output
