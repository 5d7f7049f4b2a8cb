"""Load a YAML config, validate it whole and report every problem as `FILE:LINE: message`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from uptally.config.references import check_references
from uptally.config.schema import Config

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    line: int
    path: str
    message: str


class ConfigError(Exception):
    """The config is invalid; `issues` lists every problem found."""

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = sorted(issues, key=lambda i: (i.line, i.path))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.file}:{issue.line}: {issue.path + ': ' if issue.path else ''}{issue.message}"
            for issue in self.issues
        ]


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            file, [ConfigIssue(0, "", f"cannot read the file: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(file, [ConfigIssue(0, "", "the file is not UTF-8 text")]) from None
    return parse_config(text, file)


def parse_config(text: str, file: str = "<config>") -> Config:
    data, lines, issues = _read_yaml(text)
    if data is None and not issues:
        data = {}
    if issues:
        raise ConfigError(file, issues)
    if not isinstance(data, dict):
        raise ConfigError(file, [ConfigIssue(1, "", "the config must be a mapping of sections")])
    issues.extend(
        ConfigIssue(_line_of(lines, path), _show_path(path), message)
        for path, message in check_references(data)
    )
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        issues.extend(_issues_from(error, data, lines))
        config = None
    if issues or config is None:
        raise ConfigError(file, _dedupe(issues))
    return config


# -- YAML with line numbers -----------------------------------------------------------------------


def _read_yaml(text: str) -> tuple[Any, dict[PathKey, int], list[ConfigIssue]]:
    lines: dict[PathKey, int] = {}
    issues: list[ConfigIssue] = []
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        problem = error.problem or str(error)
        context = f" ({error.context})" if error.context else ""
        return None, lines, [ConfigIssue(line, "", f"YAML syntax error: {problem}{context}")]
    except yaml.YAMLError as error:
        return None, lines, [ConfigIssue(1, "", f"YAML error: {error}")]
    if node is None:
        return None, lines, issues
    constructor = yaml.constructor.SafeConstructor()
    data = _build(node, (), lines, issues, constructor)
    return data, lines, issues


def _build(
    node: yaml.Node,
    path: PathKey,
    lines: dict[PathKey, int],
    issues: list[ConfigIssue],
    constructor: yaml.constructor.SafeConstructor,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                issues.append(
                    ConfigIssue(
                        key_node.start_mark.line + 1, _show_path(path), "keys must be plain names"
                    )
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                issues.append(
                    ConfigIssue(
                        key_node.start_mark.line + 1,
                        _show_path((*path, key)),
                        f"duplicate key {key!r}",
                    )
                )
                continue
            lines[(*path, key, "__key__")] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), lines, issues, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, i), lines, issues, constructor)
            for i, item in enumerate(node.value)
        ]
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as error:
        issues.append(
            ConfigIssue(node.start_mark.line + 1, _show_path(path), f"bad value: {error}")
        )
        return None


# -- pydantic errors to lines ---------------------------------------------------------------------


def _issues_from(
    error: ValidationError, data: Any, lines: dict[PathKey, int]
) -> Iterator[ConfigIssue]:
    for item in error.errors(include_url=False):
        path = _data_path(item["loc"], data)
        kind = item["type"]
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if kind == "extra_forbidden":
            message = f"unknown key {path[-1]!r}"
            line = lines.get((*path, "__key__")) or _line_of(lines, path)
        elif kind == "missing":
            message = f"missing required key {path[-1]!r}" + _kind_hint(path, data)
            line = _line_of(lines, path)
        elif kind == "union_tag_invalid":
            context = item.get("ctx") or {}
            expected = context.get("expected_tags")
            message = f"unknown kind {context.get('tag')!r}; expected one of {expected}"
            line = _line_of(lines, (*path, "kind"))
        elif kind == "union_tag_not_found":
            message = "missing required key 'kind'"
            line = _line_of(lines, path)
        else:
            line = _line_of(lines, path)
        yield ConfigIssue(line, _show_path(path), message)


def _data_path(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop the discriminator tags and model names pydantic inserts into error locations."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if isinstance(part, str) and part in node:
                path.append(part)
                node = node[part]
                continue
            if isinstance(part, str) and node.get("kind") == part:
                continue  # discriminator tag
            if (isinstance(part, str) and part in ("Quorum", "str", "literal['all','any']")) or (
                isinstance(part, str) and ("[" in part or part[:1].isupper())
            ):
                continue  # union member names
            path.append(part)
            node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part[:1].isupper()):
            continue
        else:
            path.append(part)
            node = None
    return tuple(path)


def _line_of(lines: dict[PathKey, int], path: PathKey) -> int:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


def _show_path(path: PathKey) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kind_hint(path: PathKey, data: Any) -> str:
    if len(path) >= 3 and path[0] == "monitors" and isinstance(path[1], int):
        try:
            kind = data["monitors"][path[1]].get("kind")
        except (KeyError, IndexError, TypeError, AttributeError):
            return ""
        if kind:
            return f" for a {kind} monitor"
    return ""


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[ConfigIssue] = set()
    unique = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            unique.append(issue)
    return unique
