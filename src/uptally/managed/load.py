"""Read the managed objects from the database, and settle ids the config file declares too."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.config.managed import KINDS, MONITOR, Kind
from uptally.config.schema import Config
from uptally.config.sharing import compact_monitors
from uptally.store import managed as store
from uptally.store.database import Database
from uptally.store.managed import ManagedRow

log = logging.getLogger(__name__)

Objects = dict[str, dict[str, BaseModel]]  # kind name -> id -> object


class ProvisioningConflict(Exception):
    """The config file declares objects that are managed in the database (provisioning: refuse)."""


@dataclass(frozen=True, slots=True)
class Loaded:
    objects: Objects
    revision: int  # what has been read: changes after it are new


def empty() -> Objects:
    return {name: {} for name in KINDS}


def parse(rows: Iterable[ManagedRow]) -> Objects:
    """The live objects of these rows (a stored document the schema no longer takes is left out,
    with an error in the log, rather than stopping uptally)."""
    objects = empty()
    by_kind: dict[str, list[ManagedRow]] = {}
    for row in rows:
        if not row.deleted and row.kind in KINDS:
            by_kind.setdefault(row.kind, []).append(row)
    for name, kind_rows in by_kind.items():
        kind = KINDS[name]
        for row, obj in zip(kind_rows, _validate(kind, kind_rows), strict=True):
            if obj is not None:
                objects[name][row.id] = obj
    return objects


def _validate(kind: Kind, rows: list[ManagedRow]) -> list[BaseModel | None]:
    try:  # all at once: ten thousand models in one call
        section = Config.model_validate({kind.section: [row.document for row in rows]})
        found: list[BaseModel] = list(getattr(section, kind.section))
    except ValidationError:
        one_by_one: list[BaseModel | None] = []
        for row in rows:
            try:
                one = Config.model_validate({kind.section: [row.document]})
                one_by_one.append(getattr(one, kind.section)[0])
            except ValidationError as error:
                log.error("%s %r in the database is not valid now: %s", kind.name, row.id, error)
                one_by_one.append(None)
        return one_by_one
    if kind is MONITOR:
        compact_monitors(found)
    return list(found)


async def load(conn: AsyncConnection) -> Loaded:
    revision = await store.revision(conn)
    return Loaded(parse(await store.changed_since(conn, 0)), revision)


def collisions(file: Config, objects: Objects) -> list[tuple[Kind, str, str]]:
    """(kind, id, FILE:LINE) of each object the file declares that the database manages."""
    found = []
    for name, by_id in objects.items():
        kind = KINDS[name]
        for object_id in by_id:
            origin = file.origin(kind.section, object_id)
            if origin is not None:
                found.append((kind, object_id, origin))
    return found


def unprovisioned(file: Config, objects: Objects) -> Objects:
    """`objects` without those whose ids the file declares (see `collisions`)."""
    clashes = {(kind.name, object_id) for kind, object_id, _ in collisions(file, objects)}
    return {
        name: {k: v for k, v in by_id.items() if (name, k) not in clashes}
        for name, by_id in objects.items()
    }


async def settle(
    db: Database, conn: AsyncConnection, file: Config, objects: Objects, actor: str, now: Millis
) -> Objects:
    """Refuse a file that declares managed ids (ProvisioningConflict), or with `provisioning:
    adopt` let the file take them over: their rows are marked deleted, audit-logged."""
    clashes = collisions(file, objects)
    if not clashes:
        return objects
    if file.provisioning != "adopt":
        lines = [
            f"{origin}: {kind.name} {object_id!r} is managed in the database (made through the "
            "API); remove it from the file, delete it through the API, or set "
            "`provisioning: adopt` to let the file take it over"
            for kind, object_id, origin in clashes
        ]
        raise ProvisioningConflict("\n".join(lines))
    for kind, object_id, origin in clashes:
        await store.delete(db, conn, kind.name, object_id, actor, now, expected=None)
        details = {"provisioned_by": origin}
        await audit.append(conn, actor, f"{kind.name}.adopted", f"{kind.name}:{object_id}", details)
        log.info("%s %r is provisioned by %s from now on (adopted)", kind.name, object_id, origin)
    return unprovisioned(file, objects)
