"""The hash chain, pure: canonical JSON, entry hashes, and a checker fed entries in seq order.

hash = SHA-256 over the canonical JSON of {seq, at, actor, action, target, details, prev_hash},
canonical meaning Python's `json.dumps(entry, sort_keys=True, separators=(",", ":"))` (ASCII,
no spaces), with `at` exactly as the API shows it (ISO 8601, milliseconds, `Z`). So anyone can
re-check an entry from `GET /api/v1/audit` alone. The first entry's prev_hash is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from uptally.clock import Millis, iso
from uptally.store.audit import GENESIS_HASH, AuditRow

__all__ = ["GENESIS_HASH", "Anchor", "ChainChecker", "Entry", "Problem", "canonical", "entry_hash"]


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: Millis
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head hash recorded elsewhere (a backup manifest, a ticket): entry `seq` must match it.

    `signature` (base64url Ed25519, see uptally.audit.signing) is set on signed anchors.
    """

    seq: int
    hash: str
    signature: str | None = None

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, _, rest = text.strip().partition(":")
        digest, _, signature = rest.partition(":")
        if (
            not seq.isdigit()
            or len(digest) != 64
            or any(c not in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise ValueError(f"an anchor is SEQ:HASH[:SIGNATURE] (64 hex digits), not {text!r}")
        return cls(int(seq), digest.lower(), signature or None)

    def __str__(self) -> str:
        base = f"{self.seq}:{self.hash}"
        return f"{base}:{self.signature}" if self.signature else base


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def entry_hash(
    seq: int,
    at: Millis,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": iso(at),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(body)).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"details repeat the key {key!r}")
        result[key] = value
    return result


def parse_row(row: AuditRow, *, strict: bool = False) -> Entry:
    """The entry of a stored row. `strict` (verification) also insists that the stored details
    are exactly their canonical JSON: duplicate keys or any other encoding were not written by
    `append`, and another reader could take a different meaning from them."""
    details = json.loads(row.details, object_pairs_hook=_no_duplicates if strict else None)
    if strict and canonical(details).decode() != row.details:
        raise ValueError("details are not in canonical JSON")
    if not isinstance(details, dict):
        raise ValueError("details is not a JSON object")
    return Entry(
        row.seq, row.at, row.actor, row.action, row.target, details, row.prev_hash, row.hash
    )


class ChainChecker:
    """Fed stored rows in seq order; remembers the first problem (and stops looking after it).

    `head` is the chain head read *before* the walk: it works like an anchor (its entry must
    exist and have its hash). The head read after the walk goes to `finish`.
    """

    def __init__(
        self, anchors: tuple[Anchor, ...] = (), head: tuple[int, str] | None = None
    ) -> None:
        self.count = 0
        self.last: tuple[int, str] | None = None
        self.problem: Problem | None = None
        self._anchors = {anchor.seq: anchor.hash for anchor in anchors}
        self._head = head

    def feed(self, row: AuditRow) -> bool:
        """Check one row; False once a problem was found."""
        if self.problem is not None:
            return False
        expected_seq = self.last[0] + 1 if self.last else 1
        prev = self.last[1] if self.last else GENESIS_HASH
        if row.seq != expected_seq:
            missing = f"{expected_seq}" + (f"–{row.seq - 1}" if row.seq - 1 > expected_seq else "")
            return self._fail(expected_seq, f"missing (entries {missing} were deleted)")
        try:
            entry = parse_row(row, strict=True)
            computed = entry_hash(
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.target,
                entry.details,
                entry.prev_hash,
            )
        except ValueError as error:
            return self._fail(row.seq, f"unreadable ({error}): edited")
        if computed != row.hash:
            if row.prev_hash == prev:
                return self._fail(row.seq, "its content does not match its hash: edited")
            return self._fail(row.seq, "does not belong here: moved (reordered) or edited")
        if row.prev_hash != prev:
            return self._fail(
                row.seq, "does not follow the entry before it: reordered, replaced or inserted"
            )
        if self._head is not None and self._head[0] == row.seq and self._head[1] != row.hash:
            return self._fail(row.seq, "differs from the recorded head: edited")
        anchored = self._anchors.get(row.seq)
        if anchored is not None and anchored != row.hash:
            return self._fail(
                row.seq, f"differs from the anchor {anchored}: the chain was rewritten"
            )
        self.count += 1
        self.last = (row.seq, row.hash)
        return True

    def finish(self, head_after: tuple[int, str] | None = None) -> Problem | None:
        """After the last row: compare with the recorded head (read after the walk) and anchors.

        Entries appended while the walk ran are legitimate: `append` moves the head in the same
        transaction, so they lie at or below the head read afterwards. An entry beyond that head
        was written around the chain head: forged.
        """
        if self.problem is not None:
            return self.problem
        head = self._head if head_after is None else head_after
        last_seq = self.last[0] if self.last else 0
        recorded = head[0] if head else 0
        if last_seq > recorded:
            self._fail(
                recorded + 1,
                f"beyond the recorded head (entry {recorded}): appended around the chain head, "
                "forged",
            )
        elif self._head is not None and self._head[0] > last_seq:
            self._fail(
                last_seq + 1,
                f"missing: the head records entry {self._head[0]}, the log ends at {last_seq} "
                "(the newest entries were deleted)",
            )
        elif head is not None and head[0] == last_seq and self.last and head[1] != self.last[1]:
            self._fail(last_seq, "differs from the recorded head: edited")
        elif head is None and self.last is not None:
            self._fail(last_seq, "the chain head is missing: tampered with")
        else:
            beyond = [seq for seq in self._anchors if seq > last_seq]
            if beyond:
                self._fail(min(beyond), "anchored but missing (the newest entries were deleted)")
        return self.problem

    def _fail(self, seq: int, reason: str) -> bool:
        self.problem = Problem(seq, reason)
        return False
