"""The four roles and the API scope each one carries (roles map onto the token scopes)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything
    RESPONDER = "responder"  # + incidents, maintenance
    EDITOR = "editor"  # + monitors, components, channels, pages
    ADMIN = "admin"  # + users, tokens, secrets, backups


ORDER = (Role.VIEWER, Role.RESPONDER, Role.EDITOR, Role.ADMIN)
SCOPE = {Role.VIEWER: "read", Role.RESPONDER: "respond", Role.EDITOR: "write", Role.ADMIN: "admin"}


def parse(text: str) -> Role:
    """A role by name; ValueError naming the four."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}: use viewer, responder, editor or admin") from None


def covers(role: Role, needed: Role) -> bool:
    return ORDER.index(role) >= ORDER.index(needed)


def highest(roles: list[Role]) -> Role | None:
    return max(roles, key=ORDER.index) if roles else None
