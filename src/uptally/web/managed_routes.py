"""The routes of a kind of managed object: list, get, create, batch, replace, patch, delete."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, and their
# body type is made here, per kind, where a string annotation could not be resolved.
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel

from uptally.config.managed import Kind
from uptally.managed.changes import Change
from uptally.runtime import Runtime
from uptally.web.auth import principal_of
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import expected_version, refusals, tag_response
from uptally.web.schemas import Model

Out = Callable[[Runtime, Any, int | None], Model]


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind as the API names it: `noun` in messages, `plural` the list's key and path."""

    kind: Kind
    noun: str  # "component", "status page"
    plural: str  # "components", "status_pages"
    path: str  # "/api/v1/components"
    out: Out
    out_model: type[Model]
    list_model: type[Model]
    example: dict[str, Any]


def add_routes(router: APIRouter, resource: Resource, delete_note: str = "") -> None:
    """The seven routes of `resource` on `router` (its prefix is `resource.path`)."""
    kind, noun = resource.kind, resource.noun
    body_type = Annotated[
        dict[str, Any],
        Body(
            description=f"One {noun} in the config file's schema, as JSON.",
            examples=[resource.example],
        ),
    ]

    def find(runtime: Runtime, object_id: str) -> Any:
        items: list[BaseModel] = getattr(runtime.config, kind.section)
        found = next((item for item in items if kind.key_of(item) == object_id), None)
        if found is None:
            raise ApiError(404, f"no {noun} {object_id!r}")
        return found

    def changed(request: Request, change: Change, response: Response) -> Model:
        runtime = runtime_of(request)
        tag_response(response, change.row.version)
        return resource.out(runtime, find(runtime, change.id), change.row.version)

    async def list_all(request: Request) -> Any:
        runtime = runtime_of(request)
        items = getattr(runtime.config, kind.section)
        return resource.list_model(
            **{resource.plural: [resource.out(runtime, i, None) for i in items]}
        )

    async def get_one(request: Request, object_id: str, response: Response) -> Any:
        runtime = runtime_of(request)
        found = find(runtime, object_id)
        row = await runtime.changes.row(kind, object_id)
        version = row.version if row is not None and not row.deleted else None
        tag_response(response, version)
        return resource.out(runtime, found, version)

    async def create(request: Request, body: body_type, response: Response) -> Any:
        runtime = runtime_of(request)
        with refusals():
            change = await runtime.changes.create(kind, body, principal_of(request).actor)
        response.headers["Location"] = f"{resource.path}/{change.id}"
        return changed(request, change, response)

    async def create_many(request: Request, body: dict[str, list[dict[str, Any]]]) -> Any:
        runtime = runtime_of(request)
        documents = body.get(resource.plural)
        if not documents or len(documents) > 10_000 or set(body) != {resource.plural}:
            message = f"give {{{resource.plural!r}: [...]}} with 1 to 10000 of them"
            raise ApiError(422, message, details=[])
        with refusals():
            changes = await runtime.changes.batch(kind, documents, principal_of(request).actor)
        shown = [resource.out(runtime, find(runtime, c.id), c.row.version) for c in changes]
        return resource.list_model(**{resource.plural: shown})

    async def replace(request: Request, object_id: str, body: body_type, response: Response) -> Any:
        runtime = runtime_of(request)
        actor, expected = principal_of(request).actor, expected_version(request)
        with refusals():
            change = await runtime.changes.replace(kind, object_id, body, actor, expected)
        return changed(request, change, response)

    async def patch(request: Request, object_id: str, body: body_type, response: Response) -> Any:
        runtime = runtime_of(request)
        actor, expected = principal_of(request).actor, expected_version(request)
        with refusals():
            change = await runtime.changes.patch(kind, object_id, body, actor, expected)
        return changed(request, change, response)

    async def delete(request: Request, object_id: str) -> Response:
        runtime = runtime_of(request)
        actor, expected = principal_of(request).actor, expected_version(request)
        with refusals():
            await runtime.changes.delete(kind, object_id, actor, expected)
        return Response(status_code=204)

    one, many = resource.out_model, resource.list_model
    router.add_api_route(
        "",
        list_all,
        methods=["GET"],
        response_model=many,
        summary=f"List {resource.plural.replace('_', ' ')}",
    )
    router.add_api_route(
        "/{object_id}", get_one, methods=["GET"], response_model=one, summary=f"One {noun}"
    )
    router.add_api_route(
        "",
        create,
        methods=["POST"],
        response_model=one,
        status_code=201,
        summary=f"Create a {noun}",
    )
    router.add_api_route(
        ":batch",
        create_many,
        methods=["POST"],
        response_model=many,
        status_code=201,
        summary=f"Create many {resource.plural.replace('_', ' ')}, all or none",
    )
    router.add_api_route(
        "/{object_id}",
        replace,
        methods=["PUT"],
        response_model=one,
        summary=f"Replace a {noun}",
        description="`If-Match` with the ETag refuses a lost update (412).",
    )
    router.add_api_route(
        "/{object_id}",
        patch,
        methods=["PATCH"],
        response_model=one,
        summary=f"Change a {noun}",
        description="A JSON merge patch (RFC 7396): the keys given replace, `null` removes a key.",
    )
    router.add_api_route(
        "/{object_id}",
        delete,
        methods=["DELETE"],
        status_code=204,
        summary=f"Delete a {noun}",
        description=delete_note or None,
    )
