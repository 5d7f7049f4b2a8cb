"""`${env:NAME}` and `${env:NAME:-default}` in config values, read from the environment at load."""

from __future__ import annotations

import re
from collections.abc import Mapping

# `${name}` alone is a scenario variable (filled in at check time) and is left alone here.
_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(Exception):
    """A value names an environment variable that is not set and gives no default."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"environment variable {name} is not set (write ${{env:{name}:-default}} to give a "
            "default)"
        )


def expand(value: str, environ: Mapping[str, str]) -> str:
    """`value` with every `${env:NAME}` replaced; raises UnsetVariable for the first unset one."""
    if "${env:" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match[1], match[2]
        found = environ.get(name)
        if found is None:  # set but empty counts as set, as in the shell
            if default is None:
                raise UnsetVariable(name)
            return default
        return found

    return _REFERENCE.sub(replace, value)
