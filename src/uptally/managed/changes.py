"""The one path a managed object changes by: validate, store and audit in one transaction, then
tell the running parts (`apply`). The admin API and `uptally config apply` both go through it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from uptally import audit
from uptally.clock import Clock
from uptally.config.managed import KINDS, MONITOR, DocumentInvalid, Kind, Problem, pointer, validate
from uptally.config.schema import Config, HeartbeatMonitor, monitor_document
from uptally.managed.diff import audit_diff, merge_patch
from uptally.managed.users import users_of
from uptally.store import managed as store
from uptally.store.database import Database
from uptally.store.managed import ManagedRow


class NotFound(Exception):
    pass


class Provisioned(Exception):
    """The config file owns this object: it changes in the file only."""

    def __init__(self, kind: Kind, object_id: str, origin: str) -> None:
        self.origin = origin
        super().__init__(f"{kind.name} {object_id!r} is provisioned by {origin}: change it there")


class Conflict(Exception):
    pass


class PreconditionFailed(Exception):
    """If-Match named another version than the current one (a lost update)."""


class InUse(Exception):
    def __init__(self, kind: Kind, object_id: str, users: list[str]) -> None:
        self.users = users
        super().__init__(f"{kind.name} {object_id!r} is still used by {', '.join(users)}")


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    id: str
    before: BaseModel | None
    after: BaseModel | None  # None: deleted
    row: ManagedRow


Apply = Callable[[Sequence[Change]], Awaitable[None]]


class ManagedObjects:
    """Creates, changes and deletes managed objects against the effective config `current()`."""

    def __init__(
        self, db: Database, clock: Clock, current: Callable[[], Config], apply: Apply
    ) -> None:
        self._db = db
        self._clock = clock
        self._current = current
        self._apply = apply
        self._lock = asyncio.Lock()  # one change at a time: each validates against the last

    async def row(self, kind: Kind, object_id: str) -> ManagedRow | None:
        async with self._db.connect() as conn:
            return await store.get(conn, kind.name, object_id)

    async def create(self, kind: Kind, document: Any, actor: str) -> Change:
        (change,) = await self.batch(kind, [document], actor)
        return change

    async def batch(self, kind: Kind, documents: Sequence[Any], actor: str) -> list[Change]:
        """Create every object or none (a problem anywhere refuses the whole batch)."""
        async with self._lock:
            config = self._current()
            many = len(documents) > 1
            problems: list[Problem] = []
            seen: set[str] = set()
            existing = {kind.key_of(obj) for obj in getattr(config, kind.section)}
            for index, document in enumerate(documents):
                key = document.get(kind.key) if isinstance(document, dict) else None
                if not isinstance(key, str):
                    continue
                at = pointer((kind.section, index, kind.key) if many else (kind.key,))
                if key in seen:
                    problems.append(Problem(at, f"{key!r} is already in this batch"))
                elif key in existing:
                    origin = config.origin(kind.section, key)
                    where = f" (provisioned by {origin})" if origin else ""
                    problems.append(Problem(at, f"{kind.name} {key!r} already exists{where}"))
                seen.add(key)
            try:
                objects = validate(kind, documents, config, (kind.section,) if many else ())
            except DocumentInvalid as error:
                raise DocumentInvalid([*error.problems, *problems]) from None
            problems += _token_problems(kind, objects, config, many)
            if problems:
                raise DocumentInvalid(problems)
            return await self._write(
                kind, [(kind.key_of(obj), None, obj, 0) for obj in objects], actor
            )

    async def replace(
        self, kind: Kind, object_id: str, document: Any, actor: str, expected: int | None
    ) -> Change:
        async with self._lock:
            return await self._replace(kind, object_id, document, actor, expected)

    async def patch(
        self, kind: Kind, object_id: str, patch: Any, actor: str, expected: int | None
    ) -> Change:
        """Apply a JSON merge patch (RFC 7396) to the object's document."""
        async with self._lock:
            row = await self._managed(kind, object_id)
            if not isinstance(patch, dict):
                raise DocumentInvalid([Problem("", "a merge patch is a JSON object")])
            if expected is None:
                expected = row.version
            return await self._replace(
                kind, object_id, merge_patch(row.document, patch), actor, expected
            )

    async def delete(self, kind: Kind, object_id: str, actor: str, expected: int | None) -> Change:
        async with self._lock:
            config = self._current()
            row = await self._managed(kind, object_id)
            if expected is not None and expected != row.version:
                raise PreconditionFailed(f"{kind.name} {object_id!r} is at version {row.version}")
            users = users_of(config, kind, object_id)
            if users:
                raise InUse(kind, object_id, users)
            before = _find(config, kind, object_id)
            (change,) = await self._write(kind, [(object_id, before, None, row.version)], actor)
            return change

    async def _replace(
        self, kind: Kind, object_id: str, document: Any, actor: str, expected: int | None
    ) -> Change:
        config = self._current()
        row = await self._managed(kind, object_id)
        if expected is not None and expected != row.version:
            raise PreconditionFailed(f"{kind.name} {object_id!r} is at version {row.version}")
        if isinstance(document, dict) and document.get(kind.key, object_id) != object_id:
            message = f"the {kind.key} is the identity and cannot change (clone it instead)"
            raise DocumentInvalid([Problem(pointer((kind.key,)), message)])
        if isinstance(document, dict):
            document = {kind.key: object_id, **document}
        (obj,) = validate(kind, [document], config)
        others = config.model_copy(update={kind.section: _without(config, kind, object_id)})
        problems = _token_problems(kind, [obj], others, False)
        if problems:
            raise DocumentInvalid(problems)
        before = _find(config, kind, object_id)
        (change,) = await self._write(kind, [(object_id, before, obj, row.version)], actor)
        return change

    async def _managed(self, kind: Kind, object_id: str) -> ManagedRow:
        origin = self._current().origin(kind.section, object_id)
        if origin is not None:
            raise Provisioned(kind, object_id, origin)
        row = await self.row(kind, object_id)
        if row is None or row.deleted:
            raise NotFound(f"no {kind.name} {object_id!r}")
        return row

    async def _write(
        self,
        kind: Kind,
        items: list[tuple[str, BaseModel | None, BaseModel | None, int]],
        actor: str,
    ) -> list[Change]:
        now = self._clock.now_ms()
        changes: list[Change] = []
        async with self._db.begin() as conn:
            puts = [(i, a) for i, _, a, _ in items if a is not None]
            stored: dict[str, ManagedRow | None] = {}
            if puts:
                documents = [(i, monitor_document(a), v) for i, _, a, v in items if a is not None]
                rows = await store.put_many(self._db, conn, kind.name, documents, actor, now)
                stored = {object_id: row for (object_id, _), row in zip(puts, rows, strict=True)}
            entries: list[tuple[str, str, dict[str, Any]]] = []
            for object_id, before, after, version in items:
                if after is None:
                    row = await store.delete(
                        self._db, conn, kind.name, object_id, actor, now, expected=version
                    )
                    action = "deleted"
                else:
                    row = stored[object_id]
                    action = "created" if before is None else "updated"
                if row is None:  # another process changed it since it was read
                    raise PreconditionFailed(f"{kind.name} {object_id!r} changed meanwhile")
                details = {"version": row.version, **audit_diff(before, after)}
                entries.append((f"{kind.name}.{action}", f"{kind.name}:{object_id}", details))
                changes.append(Change(kind, object_id, before, after, row))
            await audit.append_many(conn, actor, entries, at=now)
        await self._apply(changes)
        return changes


def _find(config: Config, kind: Kind, object_id: str) -> BaseModel | None:
    items: list[BaseModel] = getattr(config, kind.section)
    return next((obj for obj in items if kind.key_of(obj) == object_id), None)


def _without(config: Config, kind: Kind, object_id: str) -> list[BaseModel]:
    items: list[BaseModel] = getattr(config, kind.section)
    return [obj for obj in items if kind.key_of(obj) != object_id]


def _token_problems(
    kind: Kind, objects: Sequence[BaseModel], config: Config, many: bool
) -> list[Problem]:
    """A heartbeat's own token must be no other heartbeat's."""
    if kind is not MONITOR:
        return []
    taken = {m.token: m.id for m in config.monitors if isinstance(m, HeartbeatMonitor) and m.token}
    problems = []
    for index, obj in enumerate(objects):
        if isinstance(obj, HeartbeatMonitor) and obj.token:
            other = taken.get(obj.token)
            if other is not None:
                at = pointer(("monitors", index, "token") if many else ("token",))
                problems.append(Problem(at, f"token already used by monitor {other!r}"))
            taken[obj.token] = obj.id
    return problems


__all__ = [
    "KINDS",
    "Change",
    "Conflict",
    "DocumentInvalid",
    "InUse",
    "ManagedObjects",
    "NotFound",
    "PreconditionFailed",
    "Provisioned",
]
