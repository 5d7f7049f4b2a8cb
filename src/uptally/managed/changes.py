"""The one path a managed object changes by: validate, store and audit in one transaction, then
tell the running parts (`apply`). The admin API and `uptally config apply` both go through it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from uptally import audit
from uptally.clock import Clock
from uptally.config.managed import (
    KINDS,
    MONITOR,
    DocumentInvalid,
    Kind,
    Problem,
    merge,
    token_problems,
    validate,
)
from uptally.config.pointers import json_pointer
from uptally.config.schema import Config, monitor_document
from uptally.managed.desired import desired
from uptally.managed.diff import audit_diff, merge_patch
from uptally.managed.load import parse
from uptally.managed.plan import Action, Step, Stored, plan
from uptally.managed.users import channel_users, users_of
from uptally.store import channels as channel_store
from uptally.store import managed as store
from uptally.store.channels import StoredChannel
from uptally.store.database import Database
from uptally.store.managed import ManagedRow


class NotFound(Exception):
    pass


class Provisioned(Exception):
    """The config file owns this object: it changes in the file only."""

    def __init__(self, kind: Kind, object_id: str, origin: str) -> None:
        self.origin = origin
        super().__init__(f"{kind.name} {object_id!r} is provisioned by {origin}: change it there")


class PreconditionFailed(Exception):
    """If-Match named another version than the current one (a lost update)."""


class SecretsNeedAdmin(Exception):
    """`${secret:NAME}` in an object made by a principal that may not read the secret store:
    the object's checks would send the secret wherever its URL points."""

    def __init__(self) -> None:
        super().__init__(
            "referring to the secret store (${secret:…}) needs the admin scope: a check sends "
            "the secret to the monitor's target"
        )


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


SECRET_REFERENCE = "${secret:"
Apply = Callable[[Sequence[Change]], Awaitable[None]]
# Problems with objects that need I/O to find (the SSRF guard resolves names); many: a batch
Screen = Callable[[Kind, Sequence[BaseModel], bool], Awaitable[list[Problem]]]
# (kind, id, before, after or None to delete, the version it was read at; 0: new)
Item = tuple[Kind, str, BaseModel | None, BaseModel | None, int]


class ManagedObjects:
    """Creates, changes and deletes managed objects against the effective config `current()`."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        current: Callable[[], Config],
        apply: Apply,
        screen: Screen | None = None,
    ) -> None:
        self._screen = screen
        self._db = db
        self._clock = clock
        self._current = current
        self._apply = apply
        self.lock = asyncio.Lock()  # one change at a time: each validates against the last

    async def row(self, kind: Kind, object_id: str) -> ManagedRow | None:
        async with self._db.connect() as conn:
            return await store.get(conn, kind.name, object_id)

    async def create(
        self, kind: Kind, document: Any, actor: str, *, secrets: bool = True
    ) -> Change:
        (change,) = await self.batch(kind, [document], actor, secrets=secrets)
        return change

    async def batch(
        self, kind: Kind, documents: Sequence[Any], actor: str, *, secrets: bool = True
    ) -> list[Change]:
        """Create every object or none (a problem anywhere refuses the whole batch). `secrets`:
        whether the objects may refer to the secret store (see SecretsNeedAdmin)."""
        if not secrets:
            _no_secret_references(documents)
        async with self.lock:
            config = self._current()
            many = len(documents) > 1
            problems: list[Problem] = []
            seen: set[str] = set()
            existing = {kind.key_of(obj) for obj in getattr(config, kind.section)}
            for index, document in enumerate(documents):
                key = document.get(kind.key) if isinstance(document, dict) else None
                if not isinstance(key, str):
                    continue
                at = json_pointer((kind.section, index, kind.key) if many else (kind.key,))
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
            if self._screen is not None and not problems:
                problems += await self._screen(kind, objects, many)
            if problems:
                raise DocumentInvalid(problems)
            return await self._write(
                [(kind, kind.key_of(obj), None, obj, 0) for obj in objects], actor
            )

    async def replace(
        self,
        kind: Kind,
        object_id: str,
        document: Any,
        actor: str,
        expected: int | None,
        *,
        secrets: bool = True,
    ) -> Change:
        if not secrets:
            _no_secret_references([document])
        async with self.lock:
            return await self._replace(kind, object_id, document, actor, expected)

    async def patch(
        self,
        kind: Kind,
        object_id: str,
        patch: Any,
        actor: str,
        expected: int | None,
        *,
        secrets: bool = True,
    ) -> Change:
        """Apply a JSON merge patch (RFC 7396) to the object's document."""
        async with self.lock:
            row = await self._managed(kind, object_id)
            if not isinstance(patch, dict):
                raise DocumentInvalid([Problem("", "a merge patch is a JSON object")])
            if expected is None:
                expected = row.version
            document = merge_patch(row.document, patch)
            if not secrets:  # what it keeps counts too: a new URL would carry an old secret
                _no_secret_references([document])
            return await self._replace(kind, object_id, document, actor, expected)

    async def delete(self, kind: Kind, object_id: str, actor: str, expected: int | None) -> Change:
        async with self.lock:
            config = self._current()
            row = await self._managed(kind, object_id)
            if expected is not None and expected != row.version:
                raise PreconditionFailed(f"{kind.name} {object_id!r} is at version {row.version}")
            channels = await self._api_channels()
            users = users_of(config, kind, object_id) + channel_users(channels, kind, object_id)
            if users:
                raise InUse(kind, object_id, users)
            before = _find(config, kind, object_id)
            (change,) = await self._write([(kind, object_id, before, None, row.version)], actor)
            return change

    async def _api_channels(self) -> list[StoredChannel]:
        """Channels made through the API: kept apart from the config, they route by monitors
        and components too (what they name may not go either)."""
        async with self._db.connect() as conn:
            return await channel_store.load_channels(conn)

    async def apply_plan(
        self, data: Any, actor: str, *, prune: bool = False, dry_run: bool = False
    ) -> list[Step]:
        """Make the managed monitors and components match `data` (a config with `monitors`
        and/or `components`): create, update and (`prune`) delete, all in one transaction with
        an audit entry each, or nothing. The steps are returned; with `dry_run` only planned.
        Raises DocumentInvalid, InUse or PreconditionFailed (changed meanwhile)."""
        async with self.lock:
            async with self._db.connect() as conn:
                rows = [r for r in await store.changed_since(conn, 0) if r.kind in KINDS]
            managed = {KINDS[name]: objs for name, objs in parse(rows).items()}
            versions = {(r.kind, r.id): r.version for r in rows if not r.deleted}
            provisioned = _provisioned(self._current(), managed)
            wanted = desired(provisioned, managed, data, prune)
            current = {
                kind: {
                    object_id: Stored(monitor_document(obj), versions[(kind.name, object_id)])
                    for object_id, obj in objects.items()
                }
                for kind, objects in managed.items()
            }
            documents = {
                kind: {object_id: monitor_document(obj) for object_id, obj in objects.items()}
                for kind, objects in wanted.objects.items()
            }
            steps = plan(current, documents, wanted.sections if prune else ())
            after = _after(provisioned, managed, wanted.objects, steps)
            channels = await self._api_channels()
            for step in steps:
                if step.action is Action.DELETE:
                    users = users_of(after, step.kind, step.id)
                    users += channel_users(channels, step.kind, step.id)
                    if users:
                        raise InUse(step.kind, step.id, users)
            if dry_run or not steps:
                return steps
            items: list[Item] = [
                (
                    step.kind,
                    step.id,
                    managed[step.kind].get(step.id),
                    wanted.objects[step.kind][step.id] if step.after is not None else None,
                    step.version,
                )
                for step in steps
            ]
            await self._write(items, actor)
            return steps

    async def _replace(
        self, kind: Kind, object_id: str, document: Any, actor: str, expected: int | None
    ) -> Change:
        config = self._current()
        row = await self._managed(kind, object_id)
        if expected is not None and expected != row.version:
            raise PreconditionFailed(f"{kind.name} {object_id!r} is at version {row.version}")
        if isinstance(document, dict) and document.get(kind.key, object_id) != object_id:
            message = f"the {kind.key} is the identity and cannot change (clone it instead)"
            raise DocumentInvalid([Problem(json_pointer((kind.key,)), message)])
        if isinstance(document, dict):
            document = {kind.key: object_id, **document}
        (obj,) = validate(kind, [document], config)
        others = config.model_copy(update={kind.section: _without(config, kind, object_id)})
        problems = _token_problems(kind, [obj], others, False)
        if self._screen is not None and not problems:
            problems += await self._screen(kind, [obj], False)
        if problems:
            raise DocumentInvalid(problems)
        before = _find(config, kind, object_id)
        (change,) = await self._write([(kind, object_id, before, obj, row.version)], actor)
        return change

    async def _managed(self, kind: Kind, object_id: str) -> ManagedRow:
        origin = self._current().origin(kind.section, object_id)
        if origin is not None:
            raise Provisioned(kind, object_id, origin)
        row = await self.row(kind, object_id)
        if row is None or row.deleted:
            raise NotFound(f"no {kind.name} {object_id!r}")
        return row

    async def _write(self, items: Sequence[Item], actor: str) -> list[Change]:
        now = self._clock.now_ms()
        keys = self._current().security.secret_query_keys
        changes: list[Change] = []
        async with self._db.begin() as conn:
            # Rows of each kind in a few statements (a batch of ten thousand is one call).
            stored: dict[tuple[str, str], ManagedRow | None] = {}
            puts: dict[Kind, list[Item]] = {}
            for item in items:
                if item[3] is not None:
                    puts.setdefault(item[0], []).append(item)
            for kind, kind_items in puts.items():
                documents = [
                    (object_id, monitor_document(after), version)
                    for _, object_id, _, after, version in kind_items
                    if after is not None
                ]
                rows = await store.put_many(self._db, conn, kind.name, documents, actor, now)
                for (_, object_id, _, _, _), row in zip(kind_items, rows, strict=True):
                    stored[(kind.name, object_id)] = row
            entries: list[tuple[str, str, dict[str, Any]]] = []
            for kind, object_id, before, after, version in items:
                if after is None:
                    row = await store.delete(
                        self._db, conn, kind.name, object_id, actor, now, expected=version
                    )
                    action = "deleted"
                else:
                    row = stored[(kind.name, object_id)]
                    action = "created" if before is None else "updated"
                if row is None:  # another process changed it since it was read
                    raise PreconditionFailed(f"{kind.name} {object_id!r} changed meanwhile")
                details = {"version": row.version, **audit_diff(before, after, keys)}
                entries.append((f"{kind.name}.{action}", f"{kind.name}:{object_id}", details))
                changes.append(Change(kind, object_id, before, after, row))
            await audit.append_many(conn, actor, entries, at=now)
        await self._apply(changes)
        return changes


def _provisioned(config: Config, managed: Mapping[Kind, Mapping[str, BaseModel]]) -> Config:
    """`config` without the managed objects: what the file provisions (an id both declare is
    the file's: serve refuses it, or the file adopts it)."""
    update = {
        kind.section: [
            o
            for o in getattr(config, kind.section)
            if kind.key_of(o) not in objs or config.origin(kind.section, kind.key_of(o))
        ]
        for kind, objs in managed.items()
    }
    return config.model_copy(update=update)


def _after(
    provisioned: Config,
    managed: Mapping[Kind, Mapping[str, BaseModel]],
    wanted: Mapping[Kind, Mapping[str, BaseModel]],
    steps: Sequence[Step],
) -> Config:
    """The effective config once the steps are done."""
    objects = {kind: dict(objs) for kind, objs in managed.items()}
    for step in steps:
        kept = objects.setdefault(step.kind, {})
        if step.action is Action.DELETE:
            kept.pop(step.id, None)
        else:
            kept[step.id] = wanted[step.kind][step.id]
    return merge(provisioned, {kind.name: list(objs.values()) for kind, objs in objects.items()})


def _no_secret_references(documents: Sequence[Any]) -> None:
    if any(SECRET_REFERENCE in json.dumps(document) for document in documents):
        raise SecretsNeedAdmin()


def _find(config: Config, kind: Kind, object_id: str) -> BaseModel | None:
    items: list[BaseModel] = getattr(config, kind.section)
    return next((obj for obj in items if kind.key_of(obj) == object_id), None)


def _without(config: Config, kind: Kind, object_id: str) -> list[BaseModel]:
    items: list[BaseModel] = getattr(config, kind.section)
    return [obj for obj in items if kind.key_of(obj) != object_id]


def _token_problems(
    kind: Kind, objects: Sequence[BaseModel], config: Config, many: bool
) -> list[Problem]:
    return token_problems(config.monitors, objects, many) if kind is MONITOR else []


__all__ = [
    "KINDS",
    "Change",
    "DocumentInvalid",
    "InUse",
    "ManagedObjects",
    "NotFound",
    "PreconditionFailed",
    "Provisioned",
    "SecretsNeedAdmin",
]
