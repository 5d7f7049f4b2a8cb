"""Load a YAML config, validate it whole and report every problem as `FILE:LINE: message`."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from uptally.config.environment import UnsetVariable, expand
from uptally.config.pointers import PathKey, issues_of
from uptally.config.references import check_references
from uptally.config.schema import Config
from uptally.config.sharing import compact_monitors
from uptally.ids import weak_token

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Problem = tuple[PathKey, str]
PathKey2 = tuple[str, str]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 200_000  # aliases can multiply a small file into a huge one


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


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError naming every problem. `${env:NAME}`
    in values is read from `environ` (default: this process's environment)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            file, [ConfigIssue(0, "", f"cannot read the file: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(file, [ConfigIssue(0, "", "the file is not UTF-8 text")]) from None
    return parse_config(text, file, environ)


def parse_config(
    text: str,
    file: str = "<config>",
    environ: Mapping[str, str] | None = None,
    *,
    keep_env: bool = False,
) -> Config:
    """Validate config text; raise ConfigError naming every problem (`file` names it in lines).
    With `keep_env`, `${env:…}` references stay as written (for `config export`)."""
    environ = os.environ if environ is None else environ
    data, lines, issues = _read_yaml(text, environ, keep_env=keep_env)
    if data is None and issues:
        raise ConfigError(file, issues)  # a syntax error: there is nothing to validate
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, [ConfigIssue(1, "", "the config must be a mapping of sections")])
    unreadable = {issue.path for issue in issues}  # YAML problems: reported once, not again
    issues.extend(
        ConfigIssue(_line_of(lines, path), _show_path(path), message)
        for path, message in check_references(data)
    )
    issues.extend(
        ConfigIssue(_line_of(lines, path), _show_path(path), message)
        for path, message in _weak_probe_tokens(data, environ)
    )
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        issues.extend(
            ConfigIssue(_line_of(lines, found.anchor), shown, found.message)
            for found in issues_of(error, data)
            if (shown := _show_path(found.path)) not in unreadable
        )
        config = None
    if issues or config is None:
        raise ConfigError(file, _dedupe(issues))
    compact_monitors(config.monitors)
    return config.with_origins(_origins(file, data, lines))


PROVISIONED = {"monitors": "id", "components": "id", "status_pages": "id", "locations": "name"}


def _origins(file: str, data: dict[str, Any], lines: dict[PathKey, int]) -> dict[PathKey2, str]:
    """(section, id) -> FILE:LINE of each object the file declares (see Config.origin)."""
    found: dict[PathKey2, str] = {}
    for section, key in PROVISIONED.items():
        for index, item in enumerate(data.get(section) or []):
            found[(section, str(item[key]))] = f"{file}:{_line_of(lines, (section, index))}"
    channels = (data.get("notifications") or {}).get("channels") or []
    for index, item in enumerate(channels):
        path = ("notifications", "channels", index)
        found[("channels", str(item["id"]))] = f"{file}:{_line_of(lines, path)}"
    return found


def schema_problems(data: dict[str, Any]) -> list[Problem]:
    """What the schema and the cross-references say of config data that is not from a file (an
    API body wrapped as a config section): the same messages as for YAML, with paths as keys."""
    problems = check_references(data)
    try:
        Config.model_validate(data)
    except ValidationError as error:
        problems.extend(
            (found.anchor if found.anchor[-1:] != ("__key__",) else found.path, found.message)
            for found in issues_of(error, data)
        )
    return list(dict.fromkeys(problems))


def _weak_probe_tokens(data: dict[str, Any], environ: Mapping[str, str]) -> Iterator[Problem]:
    """Locations whose probe token (in the environment variable `token_env` names) is too weak
    to keep guessing out (see ids.weak_token), and so the heartbeats' ping key; an unset
    variable is not checked here."""
    locations = data.get("locations")
    for index, location in enumerate(locations if isinstance(locations, list) else []):
        name = location.get("token_env") if isinstance(location, dict) else None
        token = environ.get(name) if isinstance(name, str) else None
        reason = weak_token(token) if token else None
        if reason is not None:
            yield ("locations", index, "token_env"), f"the probe token in ${name}: {reason}"
    heartbeats = data.get("heartbeats")
    name = heartbeats.get("ping_key_env") if isinstance(heartbeats, dict) else None
    key = environ.get(name) if isinstance(name, str) else None
    if key:  # anyone with the key can ping (and with ?create=1 make) monitors by slug
        reason = weak_token(key) if re.fullmatch(r"[A-Za-z0-9_-]+", key) else "not a URL slug"
        if reason is not None:
            yield ("heartbeats", "ping_key_env"), f"the ping key in ${name}: {reason}"


# -- YAML with line numbers -----------------------------------------------------------------------


class _Builder:
    """Turns composed YAML nodes into plain data, noting the line of every value and key."""

    def __init__(self, environ: Mapping[str, str], keep_env: bool = False) -> None:
        self.environ = environ
        self.keep_env = keep_env
        self.lines: dict[PathKey, int] = {}
        self.issues: list[ConfigIssue] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.nodes = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.lines[path] = node.start_mark.line + 1
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooLarge
        if id(node) in self.active:
            self._issue(node, path, "an alias refers to itself")
            return None
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self.active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            try:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        try:
            value = self.constructor.construct_object(node, deep=True)
            if isinstance(value, str) and not self.keep_env:
                value = expand(value, self.environ)
            # Short values repeat across monitors (kinds, methods, expectations): share them.
            return sys.intern(value) if isinstance(value, str) and len(value) <= 48 else value
        except UnsetVariable as error:
            self._issue(node, path, str(error))
        except yaml.MarkedYAMLError as error:
            self._issue(node, path, f"bad value: {error.problem or error}")
        except yaml.YAMLError as error:
            self._issue(node, path, f"bad value: {error}")
        return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_pairs(value_node, path))
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in result:
                self._issue(key_node, (*path, key), f"duplicate key {key!r}")
                continue
            self.lines[(*path, key, "__key__")] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key))
        for key_node, value_node in merged:  # `<<: *base`: keys written here win
            key = self._key(key_node, path)
            if key is None or key in result:
                continue
            self.lines[(*path, key, "__key__")] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge_pairs(self, node: yaml.Node, path: PathKey) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs `<<` brings in: from a mapping, or a list of them (earlier ones win)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._issue(source, path, "'<<' merges a mapping (such as *base) or a list of them")
            elif id(source) in self.active:
                self._issue(source, path, "an alias refers to itself")
            else:
                self.active.add(id(source))
                try:
                    pairs.extend(self._flatten(source, path))
                finally:
                    self.active.discard(id(source))
        return pairs

    def _flatten(
        self, source: yaml.MappingNode, path: PathKey
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        own: list[tuple[yaml.Node, yaml.Node]] = []
        inherited: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in source.value:
            if key_node.tag == _MERGE_TAG:
                inherited.extend(self._merge_pairs(value_node, path))
            else:
                own.append((key_node, value_node))
        return own + inherited

    def _key(self, key_node: yaml.Node, path: PathKey) -> str | None:
        if isinstance(key_node, yaml.ScalarNode):
            return str(key_node.value)  # as written: `on:` and `yes:` stay names, not booleans
        self._issue(key_node, path, "keys must be plain names")
        return None

    def _issue(self, node: yaml.Node, path: PathKey, message: str) -> None:
        self.issues.append(ConfigIssue(node.start_mark.line + 1, _show_path(path), message))


class _TooLarge(Exception):
    pass


def read_yaml(
    text: str, file: str, environ: Mapping[str, str] | None = None, *, keep_env: bool = False
) -> tuple[Any, dict[PathKey, int]]:
    """YAML text as plain data (`${env:…}` expanded unless `keep_env`) and the line of every
    path; ConfigError names every problem of the YAML itself (the schema is not looked at)."""
    environ = os.environ if environ is None else environ
    data, lines, issues = _read_yaml(text, environ, keep_env=keep_env)
    if issues:
        raise ConfigError(file, issues)
    return data, lines


def line_of(lines: dict[PathKey, int], path: PathKey) -> int:
    """The line of `path`, or of the nearest enclosing value the YAML has."""
    return _line_of(lines, path)


def show_path(path: PathKey) -> str:
    """`monitors[2].port`: a path as the config's messages write it."""
    return _show_path(path)


def _read_yaml(
    text: str, environ: Mapping[str, str], *, keep_env: bool = False
) -> tuple[Any, dict[PathKey, int], list[ConfigIssue]]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        unclosed = "end of stream" in (error.problem or "") or "flow" in (error.context or "")
        if error.context_mark and unclosed:
            mark = error.context_mark  # an unclosed quote or bracket: where it was opened
        line = mark.line + 1 if mark else 1
        problem = error.problem or str(error)
        context = f" ({error.context})" if error.context else ""
        return None, {}, [ConfigIssue(line, "", f"YAML syntax error: {problem}{context}")]
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        message = f"YAML error: {error.reason} (U+{code:04X})"
        return None, {}, [ConfigIssue(line, "", message)]
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, {}, [ConfigIssue(1, "", f"YAML error: {first}")]
    if node is None:
        return None, {}, []
    builder = _Builder(environ, keep_env)
    try:
        data = builder.build(node, ())
    except _TooLarge:
        message = f"the YAML expands to more than {_MAX_NODES} values (aliases inside aliases?)"
        return None, {}, [ConfigIssue(1, "", message)]
    return data, builder.lines, builder.issues


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


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[ConfigIssue] = set()
    unique = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            unique.append(issue)
    return unique
