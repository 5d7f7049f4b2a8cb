"""The monitor editor's form: a monitor document as form values and back, and the validation
problems (JSON pointers into the document) as messages next to the form's fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from uptally.config.managed import Problem
from uptally.config.schema import MONITOR_KINDS

ACTIVE_KINDS = tuple(kind for kind in MONITOR_KINDS if kind not in ("heartbeat", "external"))
# Each kind's own fields: (key in the document, how the form holds it). Form names are
# "<kind>.<key>", so every kind's section can be on the page at once (JS shows one).
KIND_FIELDS: dict[str, list[tuple[str, str]]] = {
    "http": [
        ("url", "text"),
        ("method", "text"),
        ("headers", "headers"),
        ("body", "text"),
        ("follow_redirects", "bool"),
        ("verify_tls", "bool"),
        ("expect", "lines"),
    ],
    "tcp": [
        ("host", "text"),
        ("port", "int"),
        ("tls", "bool"),
        ("verify_tls", "bool"),
        ("server_name", "text"),
        ("send", "text"),
        ("expect", "lines"),
    ],
    "jsonrpc": [
        ("url", "text"),
        ("method", "text"),
        ("params", "yaml"),
        ("headers", "headers"),
        ("verify_tls", "bool"),
        ("expect", "lines"),
    ],
    "dns": [
        ("host", "text"),
        ("record", "text"),
        ("server", "text"),
        ("protocol", "text"),
        ("expect", "lines"),
    ],
    "scenario": [("steps", "yaml")],
    "heartbeat": [("period", "text"), ("schedule", "text"), ("grace", "text"), ("token", "text")],
    "external": [("match", "yaml")],
    "metric": [
        ("source", "text"),
        ("url", "text"),
        ("query", "text"),
        ("path", "text"),
        ("combine", "text"),
        ("headers", "headers"),
        ("verify_tls", "bool"),
        ("expect", "lines"),
    ],
}
BOOL_DEFAULTS = {"follow_redirects": True, "verify_tls": True, "tls": False}
COMMON_KEYS = ("name", "description")
TIMING_KEYS = ("interval", "retry_interval", "timeout")
DURATION_KEYS = frozenset({"interval", "retry_interval", "timeout", "period", "grace"})
FORM_LEVEL = "_form"  # problems that belong to no single field


@dataclass
class Form:
    """What the editor shows: the values as typed, and the messages per field name."""

    kind: str
    values: dict[str, Any]  # field name → text (or a list, for locations)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def duration_text(value: Any) -> str:
    """'60000ms' (how a document writes a duration) → '1m'; anything else as it is."""
    text = str(value)
    if not (text.endswith("ms") and text[:-2].isdigit()):
        return text
    ms = int(text[:-2])
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return text


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def covered(kind: str) -> set[str]:
    """The document keys the form has a field for (the rest go into 'other settings')."""
    keys = {"id", "kind", "enabled", "tags", *COMMON_KEYS}
    if kind in ACTIVE_KINDS:
        keys |= {*TIMING_KEYS, "confirm", "locations", "consensus"}
    return keys | {key for key, _ in KIND_FIELDS.get(kind, [])}


def values_of(document: Mapping[str, Any]) -> Form:
    """A monitor document (as `monitor_document` writes it) as the editor's values."""
    kind = str(document.get("kind", "http"))
    values: dict[str, Any] = {"kind": kind, "id": str(document.get("id", ""))}
    for key in COMMON_KEYS:
        values[key] = str(document.get(key) or "")
    values["enabled"] = bool(document.get("enabled", True))
    values["tags"] = " ".join(document.get("tags") or [])
    for key in TIMING_KEYS:
        values[key] = duration_text(document[key]) if key in document else ""
    values["confirm"] = str(document.get("confirm", ""))
    values["locations"] = list(document.get("locations") or ["local"])
    consensus = document.get("consensus", "all")
    values["consensus"] = "quorum" if isinstance(consensus, dict) else str(consensus)
    values["quorum"] = str(consensus.get("quorum", "")) if isinstance(consensus, dict) else ""
    for key, shape in KIND_FIELDS.get(kind, []):
        name, value = f"{kind}.{key}", document.get(key)
        if shape == "bool":
            values[name] = bool(value) if key in document else BOOL_DEFAULTS[key]
        elif value is None:
            values[name] = ""
        elif shape == "lines":
            values[name] = "\n".join(str(item) for item in value)
        elif shape == "headers":
            values[name] = "\n".join(f"{k}: {v}" for k, v in value.items())
        elif shape == "yaml":
            values[name] = _dump(value)
        else:
            values[name] = duration_text(value) if key in DURATION_KEYS else str(value)
    rest = {k: v for k, v in document.items() if k not in covered(kind)}
    values["extra"] = _dump(rest) if rest else ""
    return Form(kind, values)


def blank(kind: str, locations: Sequence[str] = ("local",)) -> Form:
    form = values_of({"kind": kind, "locations": list(locations)})
    if kind == "scenario":
        form.values["scenario.steps"] = (
            "- kind: http\n  name: health\n  url: https://example.com/health\n"
            "  expect: [status == 200]\n"
        )
    return form


def read_form(fields: Mapping[str, Any], kind: str) -> Form:
    """The submitted form (a field name → text, or a list for locations) as the editor's values."""
    values: dict[str, Any] = {"kind": kind}
    for name, value in fields.items():
        if name in ("csrf", "action"):
            continue
        values[name] = value
    values["enabled"] = "enabled" in fields
    for key, shape in KIND_FIELDS.get(kind, []):
        if shape == "bool":
            values[f"{kind}.{key}"] = f"{kind}.{key}" in fields
    return Form(kind, values)


@dataclass
class Built:
    document: dict[str, Any]
    # list indexes of "lines" fields → the form's line numbers (blank lines are skipped)
    lines: dict[str, list[int]] = field(default_factory=dict)


def build(form: Form) -> Built:
    """The document the API would take for these values; problems of the form's own syntax
    (a header without a colon, YAML that does not parse) go into `form.errors`."""
    kind, values = form.kind, form.values
    document: dict[str, Any] = {"id": _text(values, "id"), "kind": kind}
    built = Built(document)
    for key in COMMON_KEYS:
        if _text(values, key):
            document[key] = _text(values, key)
    if not values.get("enabled", True):
        document["enabled"] = False
    tags = _text(values, "tags").replace(",", " ").split()
    if tags:
        document["tags"] = tags
    if kind in ACTIVE_KINDS:
        _active_fields(values, document)
    for key, shape in KIND_FIELDS.get(kind, []):
        name = f"{kind}.{key}"
        if shape == "bool":
            if bool(values.get(name)) != BOOL_DEFAULTS[key]:
                document[key] = bool(values.get(name))
            continue
        text = _text(values, name)
        if not text.strip():
            continue
        if shape == "lines":
            numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
            numbered = [(n, line) for n, line in numbered if line]
            document[key] = [line for _, line in numbered]
            built.lines[key] = [n for n, _ in numbered]
        elif shape == "headers":
            document[key] = _headers(text, form, name)
        elif shape == "yaml":
            parsed = _yaml(text, form, name)
            if parsed is not None:
                document[key] = parsed
        elif shape == "int":
            document[key] = int(text) if text.strip().isdigit() else text.strip()
        else:
            document[key] = text if key in ("body", "send") else text.strip()
    extra = _yaml(_text(values, "extra"), form, "extra") if _text(values, "extra").strip() else None
    if extra is not None and not isinstance(extra, dict):
        form.add("extra", "other settings are a YAML mapping (key: value lines)")
    elif isinstance(extra, dict):
        for key, value in extra.items():
            if str(key) in covered(kind) and str(key) != "id":
                form.add("extra", f"{key}: set it in its own field above")
            else:
                document[str(key)] = value
    return built


def _active_fields(values: Mapping[str, Any], document: dict[str, Any]) -> None:
    for key in TIMING_KEYS:
        if _text(values, key).strip():
            document[key] = _text(values, key).strip()
    confirm = _text(values, "confirm").strip()
    if confirm:
        document["confirm"] = int(confirm) if confirm.isdigit() else confirm
    locations = values.get("locations")
    chosen = [locations] if isinstance(locations, str) else list(locations or [])
    document["locations"] = chosen
    consensus = _text(values, "consensus") or "all"
    if consensus == "quorum":
        quorum = _text(values, "quorum").strip()
        document["consensus"] = {"quorum": int(quorum) if quorum.isdigit() else quorum}
    elif consensus != "all":
        document["consensus"] = consensus


def _text(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name, "")
    return value if isinstance(value, str) else ""


def _headers(text: str, form: Form, name: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        header, colon, value = line.partition(":")
        if not colon:
            form.add(name, f"line {number}: write a header as Name: value")
            continue
        headers[header.strip()] = value.strip()
    return headers


def _yaml(text: str, form: Form, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        form.add(name, f"{where}{problem}")
        return None


def place(form: Form, built: Built, problems: Iterable[Problem]) -> None:
    """Each problem next to the field its pointer names (else at the top of the form); a field
    whose text did not parse keeps that message only (the schema saw it missing)."""
    kind = form.kind
    unparsed = set(form.errors)

    def put(name: str, message: str) -> None:
        if name not in unparsed:
            form.add(name, message)

    own = dict(KIND_FIELDS.get(kind, []))
    for problem in problems:
        parts = [_unescape(p) for p in problem.pointer.split("/")[1:]]
        key = parts[0] if parts else ""
        rest = parts[1:]
        if key in own:
            name, shape = f"{kind}.{key}", own[key]
            if shape == "lines" and rest and rest[0].isdigit():
                index = int(rest[0])
                numbers = built.lines.get(key, [])
                line = numbers[index] if index < len(numbers) else index + 1
                put(name, f"line {line}: {problem.message}")
            elif rest:
                put(name, f"{_path_text(rest)}: {problem.message}")
            else:
                put(name, problem.message)
        elif key in ("id", "name", "description", "kind", "confirm", *TIMING_KEYS):
            put(key, problem.message)
        elif key in ("tags", "locations"):
            where = f"{key[:-1]} {int(rest[0]) + 1}: " if rest and rest[0].isdigit() else ""
            put(key, where + problem.message)
        elif key == "consensus":
            put("consensus", problem.message)
        elif key and key not in covered(kind):
            put("extra", f"{_path_text(parts)}: {problem.message}")
        else:
            put(FORM_LEVEL, problem.message)


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _path_text(parts: Sequence[str]) -> str:
    """["0", "url"] → "[0].url" (where in a YAML field)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else f".{part}" if text else part
    return text
