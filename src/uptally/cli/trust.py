"""`uptally audit verify|anchor`, `tokens create|list|revoke`, `secrets set|list|rotate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from uptally.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DataDirOption,
    app,
    err,
    out,
    print_table,
    run_async,
)
from uptally.cli.common import (
    FormatOption,
    OptionalConfig,
    check_format,
    keyring,
    opened,
    salted,
    settings,
)
from uptally.clock import SystemClock, iso
from uptally.durations import parse_duration_ms

if TYPE_CHECKING:  # imported when used: other commands need not load SQLAlchemy
    from uptally import audit, tokens
    from uptally.secrets import Keyring
    from uptally.store import secrets as secret_store
    from uptally.store import tokens as token_store

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="Scoped API tokens (read, respond, write, admin, page:<id>).", no_args_is_help=True
)
secrets_app = typer.Typer(
    help="Secrets encrypted at rest (UPTALLY_SECRET_KEY).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
app.add_typer(tokens_app, name="tokens")
app.add_typer(secrets_app, name="secrets")

DEFAULT_DIR = Path("uptally-data")


@audit_app.command("verify")
def audit_verify(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            help="SEQ:HASH[:SIGNATURE] recorded elsewhere (a backup manifest, "
            "`audit anchor`) that must match."
        ),
    ] = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option(
            "--public-key",
            help="Checks signed anchors without the secret key (`audit anchor --public-key`).",
        ),
    ] = None,
    output: FormatOption = "table",
) -> None:
    """Walk the hash chain; exit 1 naming the first edited, deleted or reordered entry."""
    from uptally import audit

    check_format(output)
    settings(config)
    try:
        anchors = tuple(audit.Anchor.parse(text) for text in anchor or ())
    except ValueError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    signed = any(anchor.signature for anchor in anchors)
    ring = keyring() if signed and not public_key else None
    if signed and not public_key and ring is None:
        err.print(
            "a signed anchor is checked with --public-key or UPTALLY_SECRET_KEY",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)
    report, ring = run_async(_verify(data_dir, anchors, ring))
    forged = _check_signatures(anchors, public_key or [], ring)
    problem = forged or (str(report.problem) if report.problem else None)
    head = {"seq": report.head[0], "hash": report.head[1]} if report.head else None
    if output == "json":
        out.print_json(
            json.dumps(
                {"ok": problem is None, "entries": report.entries, "head": head, "problem": problem}
            )
        )
    elif problem is None:
        where = f"head {head['seq']}:{head['hash']}" if head else "empty"
        out.print(
            f"audit log OK: {report.entries} entries verified, {where}",
            markup=False,
            soft_wrap=True,
        )
    else:
        out.print(f"audit log TAMPERED: {problem}", markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK if problem is None else EXIT_FAILED)


def _check_signatures(
    anchors: tuple[audit.Anchor, ...], public_keys: list[str], ring: Keyring | None
) -> str | None:
    """The first anchor whose signature is not this instance's, as a problem; None if all hold."""
    from uptally.audit import signing

    signed = [anchor for anchor in anchors if anchor.signature]
    keys = list(public_keys) or (signing.known_public_keys(ring) if ring else [])
    for anchor in signed:
        try:
            signing.check(anchor, keys)
        except ValueError as error:
            return str(error)
    return None


async def _verify(
    data_dir: Path, anchors: tuple[audit.Anchor, ...], ring: Keyring | None
) -> tuple[audit.VerifyReport, Keyring | None]:
    from uptally import audit

    async with opened(data_dir) as db:
        ring = await salted(ring, db)
        async with db.connect() as conn:
            return await audit.verify(conn, anchors), ring


@audit_app.command("anchor")
def audit_anchor(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    show_public_key: Annotated[
        bool,
        typer.Option(
            "--public-key", help="Print the public key that checks this instance's anchors."
        ),
    ] = False,
) -> None:
    """Print the chain head as SEQ:HASH:SIGNATURE, to be kept elsewhere and checked by verify."""
    from uptally import audit
    from uptally.audit import signing

    settings(config)
    head, ring = run_async(_head(data_dir, keyring()))
    if show_public_key:
        if ring is None:
            err.print("the signing key comes from UPTALLY_SECRET_KEY, which is not set")
            raise typer.Exit(EXIT_USAGE)
        out.print(signing.public_key(ring), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_OK)
    if head is None:
        err.print("the audit log is empty: nothing to anchor yet")
        raise typer.Exit(EXIT_FAILED)
    anchor = audit.Anchor(*head)
    if ring is None:
        err.print(
            "not signed: UPTALLY_SECRET_KEY is not set (an unsigned anchor still catches a "
            "rewrite, but cannot prove where it came from)",
            markup=False,
            soft_wrap=True,
        )
    else:
        anchor = signing.sign(anchor, ring)
    out.print(str(anchor), markup=False, soft_wrap=True)


async def _head(
    data_dir: Path, ring: Keyring | None
) -> tuple[tuple[int, str] | None, Keyring | None]:
    from uptally.store import audit as audit_store

    async with opened(data_dir) as db:
        ring = await salted(ring, db)
        async with db.connect() as conn:
            return await audit_store.head(conn), ring


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'grafana'.")],
    scope: Annotated[
        list[str], typer.Option(help="read, respond, write, admin or page:<id> (repeat).")
    ],
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d.")] = None,
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Create a token; it is printed once (only its hash is stored)."""
    from uptally import tokens

    settings(config)
    now = SystemClock().now_ms()
    try:
        expires_at = now + parse_duration_ms(expires) if expires else None
        tokens.check_scopes(scope)
    except ValueError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    issued = run_async(_create(data_dir, name, scope, now, expires_at))
    err.print(
        f"token {issued.row.id} ({', '.join(issued.row.scopes)}) created; "
        "store it now, it is not shown again:",
        markup=False,
    )
    out.print(issued.token, markup=False, soft_wrap=True)


async def _create(
    data_dir: Path, name: str, scopes: list[str], now: int, expires_at: int | None
) -> tokens.Issued:
    from uptally import audit, tokens

    async with opened(data_dir) as db:
        try:
            async with db.begin() as conn:
                return await tokens.create(conn, name, scopes, audit.cli_actor(), now, expires_at)
        except ValueError as error:
            err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None


@tokens_app.command("list")
def tokens_list(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    output: FormatOption = "table",
) -> None:
    """Tokens with their scopes, expiry, revocation and last use (never the secrets)."""
    check_format(output)
    settings(config)
    rows = run_async(_list(data_dir))
    items: list[dict[str, Any]] = [
        {
            "id": row.id,
            "name": row.name,
            "scopes": list(row.scopes),
            "created_at": iso(row.created_at),
            "created_by": row.created_by,
            "expires_at": iso(row.expires_at),
            "revoked_at": iso(row.revoked_at),
            "last_used_at": iso(row.last_used_at),
            "last_used_ip": row.last_used_ip,
        }
        for row in rows
    ]
    if output == "json":
        out.print_json(json.dumps({"tokens": items}))
        return
    table = Table("id", "name", "scopes", "created", "expires", "revoked", "last used")
    for item in items:
        table.add_row(
            item["id"],
            item["name"],
            " ".join(item["scopes"]),
            item["created_at"],
            item["expires_at"] or "-",
            item["revoked_at"] or "-",
            item["last_used_at"] or "never",
        )
    print_table(table)


async def _list(data_dir: Path) -> list[token_store.TokenRow]:
    from uptally.store import tokens as token_store

    async with opened(data_dir) as db, db.connect() as conn:
        return await token_store.list_tokens(conn)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (see list).")],
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Revoke a token at once; exit 1 if there is no such token."""
    settings(config)
    row = run_async(_revoke(data_dir, token_id))
    if row is None:
        err.print(f"no token {token_id!r}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    out.print(
        f"token {row.id} ({row.name}) revoked at {iso(row.revoked_at)}",
        markup=False,
        soft_wrap=True,
    )


async def _revoke(data_dir: Path, token_id: str) -> token_store.TokenRow | None:
    from uptally import audit, tokens

    async with opened(data_dir) as db, db.begin() as conn:
        return await tokens.revoke(conn, token_id, audit.cli_actor(), SystemClock().now_ms())


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="The secret's name, e.g. channel:ops:secret.")],
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Store a secret read from standard input, encrypted with the current key."""
    settings(config)
    ring = keyring()
    if ring is None:
        err.print(
            "set UPTALLY_SECRET_KEY (or UPTALLY_SECRET_KEY_FILE) first",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)
    value = sys.stdin.read().rstrip("\n")
    if not value:
        err.print("no value on standard input", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    key_id = run_async(_set(data_dir, ring, name, value))
    out.print(f"secret {name} set (key {key_id})", markup=False, soft_wrap=True)


async def _set(data_dir: Path, ring: Any, name: str, value: str) -> str:
    from uptally import audit, vault

    now = SystemClock().now_ms()
    async with opened(data_dir) as db:
        ring = await salted(ring, db)
        try:
            async with db.begin() as conn:
                await vault.set_secret(db, conn, ring, name, value, audit.cli_actor(), now)
        except ValueError as error:
            err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
    return str(ring.current.id)


@secrets_app.command("webhook-secret")
def secrets_webhook_secret() -> None:
    """Print a new Standard Webhooks secret (whsec_…) for a channel with signing: standard."""
    from uptally.signing import generate_secret

    out.print(generate_secret(), markup=False, soft_wrap=True)


@secrets_app.command("list")
def secrets_list(config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR) -> None:
    """Which secrets are set and under which key (never their values)."""
    settings(config)
    found = run_async(_secrets(data_dir))
    table = Table("name", "set", "key id", "updated")
    for info in found:
        table.add_row(info.name, "yes", info.key_id, iso(info.updated_at))
    print_table(table)


async def _secrets(data_dir: Path) -> list[secret_store.SecretInfo]:
    from uptally.store import secrets as secret_store

    async with opened(data_dir) as db, db.connect() as conn:
        return await secret_store.list_secrets(conn)


@secrets_app.command("rotate")
def secrets_rotate(config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR) -> None:
    """Re-encrypt every secret under the current key (old keys in UPTALLY_SECRET_KEY_PREVIOUS)."""
    settings(config)
    ring = keyring()
    if ring is None:
        err.print("set UPTALLY_SECRET_KEY to the new key first", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        names, key_id = run_async(_rotate(data_dir, ring))
    except ValueError as error:  # SecretKeyError: an old key is missing
        err.print(f"nothing rotated: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(
        f"re-encrypted {len(names)} secret(s) under key {key_id}",
        markup=False,
        soft_wrap=True,
    )


async def _rotate(data_dir: Path, ring: Any) -> tuple[list[str], str]:
    from uptally import audit
    from uptally.store import secrets as secret_store

    now = SystemClock().now_ms()
    async with opened(data_dir) as db:
        ring = await salted(ring, db)
        async with db.begin() as conn:
            names = await secret_store.rotate(conn, ring, now)
            if names:
                await audit.append(
                    conn,
                    audit.cli_actor(),
                    "secrets.rotated",
                    "secrets",
                    {"key_id": ring.current.id, "names": names},
                    at=now,
                )
    return names, str(ring.current.id)
