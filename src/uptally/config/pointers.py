"""Pydantic validation errors as problems at paths in the data, in the config loader's words.

The YAML loader shows them as `FILE:LINE: path: message`, the API as JSON pointers into the
body (`/expect/0`): both read the same messages from `issues_of`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from uptally.config.schema import (
    ID_PATTERN,
    TAG_PATTERN,
    TAG_RULE,
    TOKEN_PATTERN,
    VARIABLE_PATTERN,
)

PathKey = tuple[str | int, ...]

_PATTERN_MESSAGES = {
    ID_PATTERN: "an id is 1 to 64 letters, digits, '_', '.' or '-', the first a letter or digit",
    TOKEN_PATTERN: "a token is 8 to 128 letters, digits, '_' or '-'",
    VARIABLE_PATTERN: "a variable name is letters, digits and '_', the first not a digit",
    TAG_PATTERN: TAG_RULE,
}


@dataclass(frozen=True, slots=True)
class Issue:
    path: PathKey  # where in the data
    message: str
    # what to point a reader at: the path, the `kind` in it, or an unknown key itself (the
    # path + "__key__": where the key is written, not a place in the data)
    anchor: PathKey

    @property
    def pointer(self) -> str:
        """Where in the data, as a JSON pointer: at `kind` when the kind is the problem."""
        return json_pointer(self.path if self.anchor[-1:] == ("__key__",) else self.anchor)


def issues_of(error: ValidationError, data: Any) -> list[Issue]:
    """Every problem of `error` (raised validating `data`) once, in the loader's words."""
    return list(_issues_from(error, data))


def json_pointer(path: PathKey) -> str:
    """("expect", 0) → "/expect/0" (RFC 6901 escapes)."""
    parts = (str(part).replace("~", "~0").replace("/", "~1") for part in path)
    return "".join("/" + part for part in parts)


def pointer_issues(error: ValidationError, data: Any) -> list[tuple[str, str]]:
    """[(JSON pointer into `data`, message)], as an API answers an invalid body."""
    return [(issue.pointer, issue.message) for issue in issues_of(error, data)]


@dataclass(frozen=True, slots=True)
class _Raw:
    path: PathKey
    union: str | None  # the union member pydantic tried, if any ("Quorum", "literal[...]")
    union_path: PathKey  # where that union is in the data
    item: Any  # pydantic's error details


def _issues_from(error: ValidationError, data: Any) -> Iterator[Issue]:
    raws = [_Raw(*_data_path(item["loc"], data), item) for item in error.errors(include_url=False)]
    said: set[PathKey] = set()
    for raw in _pick_union_members(raws, data):
        if raw.union is not None and raw.path == raw.union_path:
            if raw.path in said:
                continue  # the value fits no member: one message for the whole union
            said.add(raw.path)
            members = [r for r in raws if r.union is not None and r.path == raw.path]
            if len(members) > 1:
                yield _union_issue(raw, members)
                continue
        yield _issue(raw, data)


_EXPECTED = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "yes or no",
}


def _union_issue(raw: _Raw, members: list[_Raw]) -> Issue:
    if raw.path[-1:] == ("consensus",):
        return Issue(raw.path, "consensus is all, any or {quorum: N}", raw.path)
    wanted = list(dict.fromkeys(_EXPECTED.get(m.item["type"], "") for m in members))
    if "" in wanted:
        return _issue(raw, None)
    message = f"expected {' or '.join(wanted)}, not {_type_name(raw.item['input'])}"
    return Issue(raw.path, message, raw.path)


def _issue(raw: _Raw, data: Any) -> Issue:
    path, item = raw.path, raw.item
    kind = item["type"]
    context = item.get("ctx") or {}
    message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    anchor = path
    if kind == "extra_forbidden":
        message = f"unknown key {path[-1]!r}"
        anchor = (*path, "__key__")
    elif kind == "missing":
        message = f"missing required key {path[-1]!r}" + _kind_hint(path, data)
    elif kind == "union_tag_invalid":
        message = (
            f"unknown kind {context.get('tag')!r}; expected one of {context.get('expected_tags')}"
        )
        anchor = (*path, "kind")
    elif kind == "union_tag_not_found":
        message = "missing required key 'kind'"
        anchor = (*path, "kind")
    elif kind == "string_pattern_mismatch" and context.get("pattern") in _PATTERN_MESSAGES:
        message = f"invalid value {item['input']!r}: {_PATTERN_MESSAGES[context['pattern']]}"
    elif kind == "string_type":
        value = item["input"]
        message = f"expected text, not {_type_name(value)}"
        if not isinstance(value, dict | list) and value is not None:
            message += " (put it in quotes)"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"expected a mapping (key: value), not {_type_name(item['input'])}"
    elif kind == "list_type":
        message = f"expected a list, not {_type_name(item['input'])}"
    elif kind == "too_long":
        message = f"at most {context.get('max_length')} items, not {context.get('actual_length')}"
    elif kind == "literal_error" and path[-1:] == ("consensus",):
        message = "consensus is all, any or {quorum: N}"
    return Issue(path, message, anchor)


def _pick_union_members(raws: list[_Raw], data: Any) -> list[_Raw]:
    """Of the errors of each union member, keep those of the member the value was meant for."""
    picked: list[_Raw] = []
    for raw in raws:
        if raw.union is None:
            picked.append(raw)
            continue
        value = _value_at(data, raw.union_path)
        same = [other for other in raws if other.union and other.union_path == raw.union_path]
        meant = [other for other in same if _member_fits(other.union or "", value)]
        if raw in meant or not meant:
            picked.append(raw)
    return picked


def _member_fits(member: str, value: Any) -> bool:
    is_mapping_member = member[:1].isupper() or member.startswith("dict[")
    if isinstance(value, dict):
        return is_mapping_member
    if isinstance(value, list):
        return member.startswith("list[")
    return not is_mapping_member and not member.startswith("list[")


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[PathKey, str | None, PathKey]:
    """Drop the discriminator tags and union member names pydantic inserts into error locations.

    Returns the path in the data, and the union member the error belongs to with the path of
    that union, if any.
    """
    path: list[str | int] = []
    node = data
    union: str | None = None
    union_path: PathKey = ()
    for part in loc:
        if isinstance(node, dict):
            if isinstance(part, str) and part in node:
                path.append(part)
                node = node[part]
                continue
            if isinstance(part, str) and node.get("kind") == part:
                continue  # discriminator tag
            if _is_member_name(part):
                union, union_path = part, tuple(path)
                continue
            path.append(part)
            node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif _is_member_name(part):
            union, union_path = part, tuple(path)
            continue
        else:
            path.append(part)
            node = None
    return tuple(path), union, union_path


def _is_member_name(part: Any) -> bool:
    return isinstance(part, str) and (
        "[" in part or part[:1].isupper() or part in ("str", "int", "float", "bool", "none")
    )


def _value_at(data: Any, path: PathKey) -> Any:
    node = data
    for part in path:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return None
        node = node[part]
    return node


def _type_name(value: Any) -> str:
    names = {
        bool: "yes/no",
        int: "a number",
        float: "a number",
        str: "text",
        dict: "a mapping",
        list: "a list",
    }
    if value is None:
        return "nothing"
    return names.get(type(value), f"a {type(value).__name__}")


def _kind_hint(path: PathKey, data: Any) -> str:
    """' for a tcp monitor' or ' for an http step': which kind the missing key is needed for."""
    owner = _value_at(data, path[:-1])
    if not isinstance(owner, dict) or not isinstance(owner.get("kind"), str):
        return ""
    kind = owner["kind"]
    what = "step" if len(path) >= 3 and path[-3] == "steps" else "monitor"
    article = "an" if kind[:1] in "aeiou" or kind == "http" else "a"
    return f" for {article} {kind} {what}"
