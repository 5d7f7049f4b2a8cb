"""The mapping report of an import: what was mapped, approximated (how) or left out (why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

Outcome = Literal["mapped", "approximated", "left out"]


@dataclass(frozen=True, slots=True)
class Mapping:
    source: str  # "gatus", "statuspage", "uptime-kuma"
    item: str  # what in the source, e.g. "endpoint core/front-end: [BODY].status == UP"
    outcome: Outcome
    why: str  # how it maps, how it is approximated, or why it is left out


@dataclass(slots=True)
class Report:
    source: str
    mappings: list[Mapping] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)  # the uptally YAML, as data

    def mapped(self, item: str, why: str = "") -> None:
        self.mappings.append(Mapping(self.source, item, "mapped", why))

    def approximated(self, item: str, why: str) -> None:
        self.mappings.append(Mapping(self.source, item, "approximated", why))

    def left_out(self, item: str, why: str) -> None:
        self.mappings.append(Mapping(self.source, item, "left out", why))

    def add(self, where: str, item: str, outcome: Outcome, why: str) -> None:
        """An item found at `where` in the source (e.g. "monitor #3 (http)")."""
        self.mappings.append(Mapping(self.source, f"{where} {item}", outcome, why))

    def count(self, outcome: Outcome) -> int:
        return len(self.of(outcome))

    def of(self, outcome: Outcome) -> list[Mapping]:
        return [m for m in self.mappings if m.outcome == outcome]


_STYLE = {"mapped": "green", "approximated": "yellow", "left out": "red"}


def render(report: Report, console: Console | None = None) -> None:
    """The report as a table on standard error, with a count per outcome."""
    if console is None:
        console = Console(stderr=True, highlight=False)
        if not console.is_terminal:
            console.width = 200  # a log or a pipe: keep each row on one line where it fits
    table = Table(title=f"import from {report.source}", show_lines=False, expand=False)
    table.add_column("item", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("how / why", overflow="fold")
    for m in report.mappings:
        table.add_row(m.item, f"[{_STYLE[m.outcome]}]{m.outcome}[/]", m.why)
    console.print(table)
    counts = ", ".join(f"{len(report.of(o))} {o}" for o in ("mapped", "approximated", "left out"))
    console.print(counts, markup=False, highlight=False)
