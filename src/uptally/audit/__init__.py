"""The tamper-evident audit log: every change appends a hash-chained entry in its transaction."""

from uptally.audit.chain import GENESIS_HASH, Anchor, Entry, Problem, entry_hash
from uptally.audit.log import (
    SYSTEM,
    AuditFilter,
    VerifyReport,
    append,
    append_many,
    cli_actor,
    list_entries,
    verify,
)

__all__ = [
    "GENESIS_HASH",
    "SYSTEM",
    "Anchor",
    "AuditFilter",
    "Entry",
    "Problem",
    "VerifyReport",
    "append",
    "append_many",
    "cli_actor",
    "entry_hash",
    "list_entries",
    "verify",
]
