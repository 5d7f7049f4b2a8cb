"""The values of `${secret:NAME}` references, read from the encrypted secret store."""

from __future__ import annotations

from collections.abc import Callable

from uptally.secrets import Keyring, SecretKeyError
from uptally.store import secrets as secret_store
from uptally.store.database import Database


class SecretUnavailable(Exception):
    """A referenced secret cannot be read (not set, or no key to open it)."""


class StoreSecrets:
    def __init__(self, db: Database, keyring: Callable[[], Keyring | None]) -> None:
        self.db = db
        self.keyring = keyring

    async def __call__(self, names: set[str]) -> dict[str, str]:
        keyring = self.keyring()
        if keyring is None:
            raise SecretUnavailable("${secret:…} references need UPTALLY_SECRET_KEY")
        values: dict[str, str] = {}
        async with self.db.connect() as conn:
            for name in sorted(names):
                try:
                    found = await secret_store.get_secret(conn, keyring, name)
                except SecretKeyError as error:
                    raise SecretUnavailable(f"secret {name!r}: {error}") from None
                if found is None:
                    raise SecretUnavailable(f"secret {name!r} is not set (uptally secrets set)")
                values[name] = found
        return values
