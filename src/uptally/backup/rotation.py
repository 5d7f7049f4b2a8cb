"""Retention: keep the newest backup of each of the last N days, weeks and months (UTC)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from uptally.backup.manifest import list_backups, manifest_path
from uptally.clock import Millis, to_datetime
from uptally.config.schema import BackupKeep


def _day(at: datetime) -> Hashable:
    return at.date()


def _week(at: datetime) -> Hashable:
    return at.isocalendar()[:2]


def _month(at: datetime) -> Hashable:
    return (at.year, at.month)


def to_keep(backups: Sequence[tuple[str, Millis]], keep: BackupKeep) -> set[str]:
    """Names to keep of (name, created_at) pairs; the newest backup is always kept."""
    newest_first = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    kept = {newest_first[0][0]} if newest_first else set()
    rules: list[tuple[Callable[[datetime], Hashable], int]] = [
        (_day, keep.daily),
        (_week, keep.weekly),
        (_month, keep.monthly),
    ]
    for period_of, count in rules:
        periods: set[Hashable] = set()
        for name, at in newest_first:
            if len(periods) >= count:
                break
            period = period_of(to_datetime(at, UTC))
            if period not in periods:
                periods.add(period)
                kept.add(name)
    return kept


def rotate(directory: Path, keep: BackupKeep) -> list[Path]:
    """Delete the backups (and their manifests) that retention no longer keeps."""
    backups = list_backups(directory)
    kept = to_keep([(path.name, manifest.created_at_ms) for path, manifest in backups], keep)
    removed = []
    for path, _ in backups:
        if path.name not in kept:
            path.unlink(missing_ok=True)
            manifest_path(path).unlink(missing_ok=True)
            removed.append(path)
    return removed
