"""`uptally users create|list|disable|enable|set-role|reset-password|reset-2fa|sign-out`:
console accounts."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from uptally.cli.app import EXIT_USAGE, DataDirOption, app, err, out, print_table, run_async
from uptally.cli.common import (
    REPORT_FORMATS,
    OptionalConfig,
    ReportFormatOption,
    check_format,
    opened,
    settings,
)
from uptally.clock import SystemClock, iso

if TYPE_CHECKING:  # imported when used: other commands need not load SQLAlchemy
    from uptally.config import Config
    from uptally.store.accounts import UserRow

users_app = typer.Typer(
    help="Console accounts (roles viewer, responder, editor, admin).", no_args_is_help=True
)
app.add_typer(users_app, name="users")

DEFAULT_DIR = Path("uptally-data")
EmailArgument = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's e-mail address.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        err.print("no password on standard input", markup=False)
        raise typer.Exit(EXIT_USAGE)
    return password


def _refused(error: Exception) -> typer.Exit:
    err.print(str(error), markup=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="E-mail address (the sign-in name).")],
    role: Annotated[str, typer.Option(help="viewer, responder, editor or admin.")],
    password_stdin: PasswordStdin = False,
    name: Annotated[str, typer.Option(help="Display name (default: from the e-mail).")] = "",
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Create a user. Without --password-stdin the user has no password: a one-time link to
    choose one is printed (valid 1 h)."""
    from uptally.accounts import roles

    loaded = settings(config)
    try:
        parsed = roles.parse(role)
    except ValueError as error:
        raise _refused(error) from None
    password = _password_from_stdin() if password_stdin else None
    user, link = run_async(_create(data_dir, loaded, email, parsed, password, name))
    out.print(f"user {user.email} ({user.role}) created", markup=False, soft_wrap=True)
    if link:
        out.print(f"choose a password at: {_link(loaded, link)}", markup=False, soft_wrap=True)


def _link(config: Config, token: str) -> str:
    base = (config.site.url or "http://127.0.0.1:8080").rstrip("/")
    return f"{base}/console/reset?token={token}"


async def _create(
    data_dir: Path, config: Config, email: str, role: Any, password: str | None, name: str
) -> tuple[UserRow, str | None]:
    from uptally import audit
    from uptally.accounts import links, users

    now = SystemClock().now_ms()
    async with opened(data_dir) as db:
        try:
            async with db.begin() as conn:
                user = await users.create(
                    conn, email, role, password, audit.cli_actor(), now, config.console, name=name
                )
                link = None if password else await links.issue(conn, links.RESET, user.id, now)
                return user, link
        except users.AccountError as error:
            raise _refused(error) from None


@users_app.command("list")
def users_list(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    output: ReportFormatOption = "table",
) -> None:
    """Users with role, second factor, state and last sign-in (never password hashes)."""
    from uptally.accounts import users

    check_format(output, REPORT_FORMATS)
    settings(config)
    rows = run_async(_list(data_dir))
    now = SystemClock().now_ms()
    items = [
        {
            "email": row.email,
            "name": row.name,
            "role": row.role,
            "state": users.state_of(row, now),
            "second_factor": row.totp_enabled_at is not None,
            "sso": row.sso_subject is not None,
            "created_at": iso(row.created_at),
            "last_login_at": iso(row.last_login_at),
        }
        for row in rows
    ]
    if output == "json":
        out.print_json(json.dumps({"users": items}))
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(items[0]) if items else ["email"])
        writer.writeheader()
        writer.writerows(items)
        out.print(buffer.getvalue(), end="", markup=False, soft_wrap=True)
        return
    table = Table("email", "name", "role", "state", "2FA", "SSO", "created", "last sign-in")
    for item in items:
        table.add_row(
            item["email"],
            item["name"],
            item["role"],
            item["state"],
            "yes" if item["second_factor"] else "no",
            "yes" if item["sso"] else "no",
            item["created_at"],
            item["last_login_at"] or "never",
        )
    print_table(table)


async def _list(data_dir: Path) -> list[UserRow]:
    from uptally.accounts import users

    async with opened(data_dir) as db, db.connect() as conn:
        return await users.listed(conn)


def _change(data_dir: Path, change: Any) -> Any:
    from uptally import audit
    from uptally.accounts import users

    async def run() -> Any:
        now = SystemClock().now_ms()
        async with opened(data_dir) as db:
            try:
                async with db.begin() as conn:
                    return await change(conn, audit.cli_actor(), now)
            except users.AccountError as error:
                raise _refused(error) from None

    return run_async(run())


@users_app.command("disable")
def users_disable(
    email: EmailArgument, config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR
) -> None:
    """Disable a user: every session ends and sign-in is refused."""
    from uptally.accounts import users

    settings(config)
    user = _change(data_dir, lambda c, a, n: users.set_disabled(c, email, True, a, n))
    out.print(f"user {user.email} disabled", markup=False, soft_wrap=True)


@users_app.command("enable")
def users_enable(
    email: EmailArgument, config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR
) -> None:
    """Enable a disabled user again (and lift a lockout)."""
    from uptally.accounts import users

    settings(config)
    user = _change(data_dir, lambda c, a, n: users.set_disabled(c, email, False, a, n))
    out.print(f"user {user.email} enabled", markup=False, soft_wrap=True)


@users_app.command("set-role")
def users_set_role(
    email: EmailArgument,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="viewer, responder, editor, admin.")],
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Change a user's role (audit-logged)."""
    from uptally.accounts import roles, users

    settings(config)
    try:
        parsed = roles.parse(role)
    except ValueError as error:
        raise _refused(error) from None
    user = _change(data_dir, lambda c, a, n: users.set_role(c, email, parsed, a, n))
    out.print(f"user {user.email} is now {user.role}", markup=False, soft_wrap=True)


@users_app.command("reset-password")
def users_reset_password(
    email: EmailArgument,
    password_stdin: PasswordStdin = False,
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
) -> None:
    """Set a new password from standard input, or print a one-time reset link (valid 1 h).
    Either way the user's sessions end and a lockout is lifted."""
    from uptally.accounts import links, users

    loaded = settings(config)
    password = _password_from_stdin() if password_stdin else None

    async def change(conn: Any, actor: str, now: int) -> str | None:
        user = await users.existing(conn, email)
        if password is not None:
            await users.set_password(conn, user, password, actor, now, loaded.console)
            return None
        return await links.issue(conn, links.RESET, user.id, now)

    link = _change(data_dir, change)
    if link is None:
        out.print(f"password of {email.strip().lower()} set", markup=False, soft_wrap=True)
    else:
        out.print(
            f"reset link (works once, for 1 hour): {_link(loaded, link)}",
            markup=False,
            soft_wrap=True,
        )


@users_app.command("reset-2fa")
def users_reset_second_factors(
    email: EmailArgument, config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR
) -> None:
    """Remove a user's authenticator app, passkeys and recovery codes (they lost them) and end
    their sessions: the password alone signs them in again (with console.require_totp, straight
    to setting up a new app)."""
    from uptally.accounts import totp, users

    settings(config)

    async def change(conn: Any, actor: str, now: int) -> int:
        return await totp.reset(conn, await users.existing(conn, email), actor, now)

    ended = _change(data_dir, change)
    out.print(
        f"second factors of {email.strip().lower()} removed; {ended} session(s) ended",
        markup=False,
        soft_wrap=True,
    )


@users_app.command("sign-out")
def users_sign_out(
    email: EmailArgument, config: OptionalConfig = None, data_dir: DataDirOption = DEFAULT_DIR
) -> None:
    """End every console session of a user."""
    from uptally.accounts import sessions, users

    settings(config)

    async def change(conn: Any, actor: str, now: int) -> int:
        return await sessions.end_all(conn, await users.existing(conn, email), actor, now)

    ended = _change(data_dir, change)
    out.print(f"{ended} session(s) of {email.strip().lower()} ended", markup=False, soft_wrap=True)
