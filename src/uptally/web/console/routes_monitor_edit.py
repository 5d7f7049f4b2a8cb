"""The console's monitor editor: a form for every check kind, validated by the same change
service as the admin API (its problems shown next to the fields), and "test this check"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from uptally.accounts import roles, users
from uptally.accounts.roles import Role
from uptally.config.managed import MONITOR, DocumentInvalid, Problem, validate
from uptally.config.schema import MONITOR_KINDS, monitor_document
from uptally.managed.changes import NotFound, Provisioned, SecretsNeedAdmin
from uptally.web import monitor_runs
from uptally.web.console import monitor_form, monitor_labels, render
from uptally.web.console.monitor_form import Built, Form
from uptally.web.console.routes_monitors import no_such_monitor
from uptally.web.console.session import Editor, principal
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.views import masked_values, shown_config

router = APIRouter(prefix="/console/monitors", include_in_schema=False)
MASKED = "masked as shown: type the real value or a ${secret:NAME} reference"


def _kind(value: Any, default: str = "http") -> str:
    return value if isinstance(value, str) and value in MONITOR_KINDS else default


async def _editor(
    request: Request,
    signed: Any,
    form: Form,
    monitor_id: str | None,
    status: int = 200,
    **extra: Any,
) -> Response:
    runtime = runtime_of(request)
    values: dict[str, Any] = {"tested": None, "test_error": "", **extra}
    return await render.page(
        request,
        signed,
        "monitors_edit.html",
        nav="overview",
        status=status,
        title=f"Edit {monitor_id}" if monitor_id else "New monitor",
        form=form,
        editing=monitor_id,
        kinds=MONITOR_KINDS,
        kind_fields=monitor_form.KIND_FIELDS,
        location_names=runtime.config.location_names,
        form_level=monitor_form.FORM_LEVEL,
        text_of=monitor_labels.text_of,
        options=monitor_labels.OPTIONS,
        active_kinds=monitor_form.ACTIVE_KINDS,
        **values,
    )


async def _provisioned(request: Request, signed: Any, error: Provisioned) -> Response:
    return await render.page(
        request,
        signed,
        "message.html",
        nav="overview",
        status=409,
        title="Provisioned monitor",
        message=f"{error}. The console shows it read-only.",
    )


@router.get("/new")
async def new(request: Request, signed: Editor) -> Response:
    kind = _kind(request.query_params.get("kind"))
    return await _editor(request, signed, monitor_form.blank(kind), None)


@router.post("/new")
async def create(request: Request, signed: Editor) -> Response:
    return await _submit(request, signed, None)


@router.get("/{monitor_id}/edit")
async def edit(request: Request, monitor_id: str, signed: Editor) -> Response:
    runtime = runtime_of(request)
    monitor = runtime.config.monitor(monitor_id)
    origin = runtime.config.origin("monitors", monitor_id)
    if origin is not None:
        return await _provisioned(request, signed, Provisioned(MONITOR, monitor_id, origin))
    if monitor is None:
        return await no_such_monitor(request, signed, monitor_id)
    shown = shown_config(monitor, runtime.config.security.secret_query_keys)
    form = monitor_form.values_of(shown)
    kind = request.query_params.get("kind")
    if kind in MONITOR_KINDS and kind != form.kind:
        form = monitor_form.values_of({**shown, "kind": kind})
    return await _editor(request, signed, form, monitor_id)


@router.post("/{monitor_id}/edit")
async def save(request: Request, monitor_id: str, signed: Editor) -> Response:
    return await _submit(request, signed, monitor_id)


async def _submit(request: Request, signed: Any, monitor_id: str | None) -> Response:
    """One form, three buttons: continue (another kind), test (run once) and save."""
    runtime = runtime_of(request)
    if monitor_id is not None:
        origin = runtime.config.origin("monitors", monitor_id)
        if origin is not None:
            return await _provisioned(request, signed, Provisioned(MONITOR, monitor_id, origin))
        if runtime.config.monitor(monitor_id) is None:
            return await no_such_monitor(request, signed, monitor_id)
    submitted = await request.form()
    fields: dict[str, Any] = {
        name: value for name, value in submitted.multi_items() if isinstance(value, str)
    }
    fields["locations"] = [v for v in submitted.getlist("locations") if isinstance(v, str)]
    form = monitor_form.read_form(fields, _kind(fields.get("kind")))
    if monitor_id is not None:
        form.values["id"] = monitor_id
    action = fields.get("action", "save")
    if action == "kind":  # "Continue": show the chosen kind's fields, keep what was typed
        return await _editor(request, signed, form, monitor_id)
    built = monitor_form.build(form)
    if monitor_id is not None:
        _unmask(runtime, monitor_id, built.document)
    found = [Problem(p, MASKED) for p in masked_values(built.document)]
    admin = roles.covers(users.role_of(signed.user), Role.ADMIN)
    if action == "test":
        return await _test(request, signed, form, built, monitor_id, admin)
    if form.errors or found:  # the form's own syntax: the service would not see it all
        monitor_form.place(form, built, [*found, *_schema_problems(runtime, built)])
        return await _editor(request, signed, form, monitor_id, status=422)
    actor = principal(signed).actor
    try:
        if monitor_id is None:
            change = await runtime.changes.create(MONITOR, built.document, actor, secrets=admin)
        else:
            change = await runtime.changes.replace(
                MONITOR, monitor_id, built.document, actor, None, secrets=admin
            )
    except DocumentInvalid as error:
        monitor_form.place(form, built, error.problems)
        return await _editor(request, signed, form, monitor_id, status=422)
    except SecretsNeedAdmin as error:
        form.add(monitor_form.FORM_LEVEL, str(error))
        return await _editor(request, signed, form, monitor_id, status=403)
    except Provisioned as error:
        return await _provisioned(request, signed, error)
    except NotFound:
        return await no_such_monitor(request, signed, monitor_id or "")
    done = "created" if monitor_id is None else "saved"
    return RedirectResponse(f"/console/monitors/{change.id}?done={done}", status_code=303)


def _schema_problems(runtime: Any, built: Built) -> list[Problem]:
    """The change service's validation of what the form could build (nothing is saved)."""
    try:
        validate(MONITOR, [built.document], runtime.config)
    except DocumentInvalid as error:
        return error.problems
    return []


def _unmask(runtime: Any, monitor_id: str, document: dict[str, Any]) -> None:
    """Values sent back exactly as the editor showed them masked keep the stored secret."""
    monitor = runtime.config.monitor(monitor_id)
    if monitor is None:
        return
    stored = monitor_document(monitor)
    shown = shown_config(monitor, runtime.config.security.secret_query_keys)
    for key in ("url", "headers"):
        value = document.get(key)
        if key == "url" and value == shown.get(key) and value != stored.get(key):
            document[key] = stored[key]
        if key == "headers" and isinstance(value, dict):
            for name, header in value.items():
                if header == shown.get(key, {}).get(name):
                    value[name] = stored.get(key, {}).get(name, header)


async def _test(
    request: Request, signed: Any, form: Form, built: Built, monitor_id: str | None, admin: bool
) -> Response:
    runtime = runtime_of(request)
    if form.errors:
        monitor_form.place(form, built, _schema_problems(runtime, built))
        return await _editor(request, signed, form, monitor_id, status=422)
    document = dict(built.document)
    if not document.get("id"):
        document.pop("id")
    try:
        tested = await monitor_runs.test_document(runtime, document, admin)
    except ApiError as error:
        problems = [Problem(d.get("path", ""), d.get("message", "")) for d in error.details or []]
        monitor_form.place(form, built, [p for p in problems if p.pointer])
        return await _editor(
            request, signed, form, monitor_id, status=error.status, test_error=error.message
        )
    return await _editor(request, signed, form, monitor_id, tested=tested.result)
