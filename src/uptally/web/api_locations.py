"""Admin API: probe locations, read and managed; one made here gets a generated probe token."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response

from uptally.config.managed import LOCATION
from uptally.config.schema import Location, monitor_document
from uptally.ids import new_token
from uptally.managed.changes import Change
from uptally.runtime import Runtime
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import ERRORS, expected_version, refusals, tag_response
from uptally.web.schemas import Model

router = APIRouter(
    prefix="/api/v1/locations",
    tags=["locations"],
    dependencies=[Depends(require_admin)],  # read for GET, write for changes
    responses=ERRORS,
)
# The token is shown once, in the answer that makes it; only its SHA-256 is kept, as
# `token_hash` in the location's own document: it is stored, audited (as a digest), deleted
# and followed by other processes with the location, and no table holds it in clear.
TOKEN_BYTES = 32  # 256 bits, 43 base64url characters

LocationBody = Annotated[
    dict[str, Any],
    Body(
        description="One location in the config file's schema, as JSON, without a token: "
        "uptally generates it.",
        examples=[{"name": "eu-west", "canaries": ["https://example.com/"]}],
    ),
]


class LocationOut(Model):
    name: str
    canaries: list[str] | None
    token_source: Literal["env", "generated"] | None  # where its probe token comes from
    source: Literal["config", "api"]
    provisioned_by: str | None  # FILE:LINE
    version: int | None = None
    config: dict[str, Any]  # without token_hash


class LocationCreated(LocationOut):
    token: str  # the probe token, shown this once: give it to the agent (`uptally probe --token`)


class LocationList(Model):
    locations: list[LocationOut]


def _out(runtime: Runtime, location: Location, version: int | None = None) -> LocationOut:
    source = "generated" if location.token_hash else "env" if location.token_env else None
    return LocationOut(
        name=location.name,
        canaries=location.canaries,
        token_source=source,
        source="api" if location.name in runtime.managed[LOCATION.name] else "config",
        provisioned_by=runtime.config.origin("locations", location.name),
        version=version,
        config={k: v for k, v in monitor_document(location).items() if k != "token_hash"},
    )


def _find(runtime: Runtime, name: str) -> Location:
    found = next((loc for loc in runtime.config.locations if loc.name == name), None)
    if found is None:
        raise ApiError(404, f"no location {name!r}")
    return found


def _changed(request: Request, change: Change, response: Response) -> LocationOut:
    runtime = runtime_of(request)
    tag_response(response, change.row.version)
    return _out(runtime, _find(runtime, change.id), change.row.version)


def _no_token_keys(body: dict[str, Any]) -> None:
    """The token is uptally's to make: a body may not name one."""
    details = [
        {
            "path": f"/{key}",
            "message": f"{key} is not set through the API: uptally generates "
            "the probe token of a location made here",
        }
        for key in ("token_env", "token_hash")
        if key in body
    ]
    if details:
        raise ApiError(422, details[0]["message"], details=details)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()  # as fleet.token_hash compares it


@router.get("", response_model=LocationList, summary="List probe locations")
async def list_locations(request: Request) -> LocationList:
    runtime = runtime_of(request)
    return LocationList(locations=[_out(runtime, loc) for loc in runtime.config.locations])


@router.get("/{name}", response_model=LocationOut, summary="One probe location")
async def get_location(request: Request, name: str, response: Response) -> LocationOut:
    runtime = runtime_of(request)
    location = _find(runtime, name)
    row = await runtime.changes.row(LOCATION, name)
    version = row.version if row is not None and not row.deleted else None
    tag_response(response, version)
    return _out(runtime, location, version)


@router.post("", response_model=LocationCreated, status_code=201, summary="Create a location")
async def create_location(
    request: Request, body: LocationBody, response: Response
) -> LocationCreated:
    """Answers with `token`, which is never shown again: an agent started with it
    (`uptally probe --location NAME --token …`) is taken at once."""
    runtime = runtime_of(request)
    _no_token_keys(body)
    token = new_token(TOKEN_BYTES)
    with refusals():
        change = await runtime.changes.create(
            LOCATION, {**body, "token_hash": _token_hash(token)}, principal_of(request).actor
        )
    response.headers["Location"] = f"/api/v1/locations/{change.id}"
    made = _changed(request, change, response)
    return LocationCreated(**made.model_dump(), token=token)


@router.post(
    "/{name}/token", response_model=LocationCreated, summary="Give a location a new probe token"
)
async def rotate_token(request: Request, name: str, response: Response) -> LocationCreated:
    """The old token stops working at once; the new one is shown this once."""
    runtime = runtime_of(request)
    token = new_token(TOKEN_BYTES)
    with refusals():
        change = await runtime.changes.patch(
            LOCATION,
            name,
            {"token_hash": _token_hash(token)},
            principal_of(request).actor,
            expected_version(request),
        )
    made = _changed(request, change, response)
    return LocationCreated(**made.model_dump(), token=token)


@router.put("/{name}", response_model=LocationOut, summary="Replace a location")
async def replace_location(
    request: Request, name: str, body: LocationBody, response: Response
) -> LocationOut:
    """Its probe token stays (rotate it with POST …/token)."""
    runtime = runtime_of(request)
    _no_token_keys(body)
    expected = expected_version(request)
    row = await runtime.changes.row(LOCATION, name)
    if row is not None and not row.deleted and row.document.get("token_hash"):
        body = {**body, "token_hash": row.document["token_hash"]}
        expected = row.version if expected is None else expected  # the token read is current
    with refusals():
        change = await runtime.changes.replace(
            LOCATION, name, body, principal_of(request).actor, expected
        )
    return _changed(request, change, response)


@router.patch("/{name}", response_model=LocationOut, summary="Change a location")
async def patch_location(
    request: Request, name: str, body: LocationBody, response: Response
) -> LocationOut:
    """A JSON merge patch (RFC 7396): the keys given replace, `null` removes a key."""
    runtime = runtime_of(request)
    _no_token_keys(body)
    with refusals():
        change = await runtime.changes.patch(
            LOCATION, name, body, principal_of(request).actor, expected_version(request)
        )
    return _changed(request, change, response)


@router.delete("/{name}", status_code=204, summary="Delete a location")
async def delete_location(request: Request, name: str) -> Response:
    """Refused (409, with the list) while a monitor still runs from it; its token stops
    working at once."""
    runtime = runtime_of(request)
    with refusals():
        await runtime.changes.delete(
            LOCATION, name, principal_of(request).actor, expected_version(request)
        )
    return Response(status_code=204)
