"""The SSRF guard for blocking clients (Apprise's requests, smtplib): checked name resolution.

Apprise's plugins open their own connections (requests/urllib3, smtplib, paho …), and all of
them resolve through `socket.getaddrinfo` and then connect to exactly the addresses it
answered. Within `guarding(guard)` (a context variable, which Apprise carries into its worker
threads) that lookup answers only addresses the guard allows and fails otherwise, so the
connection goes to a checked address and TLS still verifies the name. Outside it, and in every
other thread, `socket.getaddrinfo` behaves as before.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from uptally.netguard import Guard


@dataclass(slots=True)
class _Gate:
    guard: Guard
    refused: list[str] = field(default_factory=list)  # what the guard refused, for the error


_gate: ContextVar[_Gate | None] = ContextVar("uptally_socket_guard", default=None)
_original = socket.getaddrinfo
_install_lock = threading.Lock()


def _checked_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    infos = _original(host, port, *args, **kwargs)
    gate = _gate.get()
    if gate is None or host is None:
        return infos
    name = host.decode() if isinstance(host, bytes) else str(host)
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not gate.guard.permits(name, address):
            problem = f"{name}: {address} is not a public address"
            gate.refused.append(problem)
            # an OSError: clients report it as a failed resolution, never as a crash
            raise socket.gaierror(socket.EAI_FAIL, f"refused by the SSRF guard ({problem})")
    return infos


def _install() -> None:
    with _install_lock:
        if socket.getaddrinfo is not _checked_getaddrinfo:
            socket.getaddrinfo = _checked_getaddrinfo


@contextmanager
def guarding(guard: Guard | None) -> Iterator[list[str]]:
    """Check every name resolved in this context; yields the refusals (empty if none)."""
    if guard is None:
        yield []
        return
    _install()
    gate = _Gate(guard)
    token = _gate.set(gate)
    try:
        yield gate.refused
    finally:
        _gate.reset(token)
