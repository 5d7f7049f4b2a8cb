"""What changed in a managed object, for the audit log (secrets digested, never shown), and
JSON merge patches (RFC 7396) for PATCH."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from uptally.config.pointers import json_pointer
from uptally.config.schema import monitor_document
from uptally.redaction import Redactor

# Values that may carry credentials: recorded as a digest, so that a change shows but not what.
SECRET_KEYS = frozenset(
    {"headers", "body", "json", "params", "token", "token_hash", "send", "query"}
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def audit_diff(
    before: BaseModel | None, after: BaseModel | None, query_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """{"changes": {pointer: {"before", "after"}}} between two versions of an object
    (`query_keys`: secret URL query keys besides the defaults, masked in URLs)."""
    return document_diff(
        monitor_document(before) if before is not None else None,
        monitor_document(after) if after is not None else None,
        query_keys=query_keys,
    )


def document_diff(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    secret_keys: frozenset[str] = frozenset(),
    query_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """`audit_diff` of plain documents; `secret_keys` are digested too (at the top level)."""
    redactor = Redactor.with_keys(query_keys)
    old = _shown(before, secret_keys, redactor) if before is not None else {}
    new = _shown(after, secret_keys, redactor) if after is not None else {}
    changes: dict[str, Any] = {}
    _compare(old, new, (), changes)
    return {"changes": changes}


def _compare(old: Any, new: Any, path: tuple[str | int, ...], out: dict[str, Any]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _compare(old.get(key), new.get(key), (*path, key), out)
    elif old != new:
        out[json_pointer(path) or "/"] = {"before": old, "after": new}


def _shown(
    document: dict[str, Any], secret_keys: frozenset[str], redactor: Redactor
) -> dict[str, Any]:
    return {
        key: _digest(value) if key in secret_keys else _value(key, value, redactor)
        for key, value in document.items()
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _value(key: str, value: Any, redactor: Redactor) -> Any:
    if key in SECRET_KEYS:
        return _digest(value)
    if key == "url" and isinstance(value, str):
        return redactor.url(value)
    if isinstance(value, dict):
        return {k: _value(k, v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_value("", item, redactor) for item in value]
    return value
