"""Results → per-location states → verified outages; deterministic, no I/O."""

from uptally.evaluator.machine import DEFAULT_HORIZON_MS, Evaluator, Histories, Rules
from uptally.evaluator.states import (
    Evaluation,
    LocationSnapshot,
    LocationState,
    MonitorState,
    MonitorStatus,
    Outage,
    Span,
)

__all__ = [
    "DEFAULT_HORIZON_MS",
    "Evaluation",
    "Evaluator",
    "Histories",
    "LocationSnapshot",
    "LocationState",
    "MonitorState",
    "MonitorStatus",
    "Outage",
    "Rules",
    "Span",
]
