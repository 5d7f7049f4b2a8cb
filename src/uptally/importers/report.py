"""The mapping report of an import: what was mapped, approximated or left out, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

Outcome = Literal["mapped", "approximated", "left out"]


@dataclass(frozen=True, slots=True)
class Mapping:
    """One item of the source and what became of it."""

    source: str  # where it was in the source, e.g. "monitor #3 (http)"
    item: str  # what it is, e.g. "monitor 'Website'" or "maxretries"
    outcome: Outcome
    why: str


@dataclass(slots=True)
class Report:
    """The uptally document an import produced and how each source item fared."""

    mappings: list[Mapping] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)

    def add(self, source: str, item: str, outcome: Outcome, why: str) -> None:
        self.mappings.append(Mapping(source, item, outcome, why))

    def count(self, outcome: Outcome) -> int:
        return sum(1 for m in self.mappings if m.outcome == outcome)


_STYLE = {"mapped": "green", "approximated": "yellow", "left out": "red"}


def show_report(report: Report, console: Console | None = None) -> None:
    """Print the report as a table (on standard error unless told otherwise)."""
    if console is None:
        console = Console(stderr=True, highlight=False)
        if not console.is_terminal:
            console.width = 1_000_000  # a pipe or file gets whole lines, never cut
    table = Table(title="import report", title_justify="left")
    for column in ("source", "item", "outcome", "why"):
        table.add_column(column, overflow="fold")
    for m in report.mappings:
        outcome = Text(m.outcome, style=_STYLE[m.outcome])
        table.add_row(Text(m.source), Text(m.item), outcome, Text(m.why))
    console.print(table)
    console.print(
        f"{report.count('mapped')} mapped, {report.count('approximated')} approximated, "
        f"{report.count('left out')} left out",
        markup=False,
    )
