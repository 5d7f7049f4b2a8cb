"""Runbook checklists: an incident's steps from a named template in the config."""

from __future__ import annotations

from collections.abc import Sequence

from uptally.config.schema import RunbookPhase
from uptally.incidents.model import RunbookStep


def steps_from(incident: str, template: Sequence[RunbookPhase]) -> list[RunbookStep]:
    """The template's steps in order, numbered from 1, none done yet."""
    steps: list[RunbookStep] = []
    for phase in template:
        for title in phase.steps:
            steps.append(RunbookStep(incident, len(steps) + 1, phase.phase, title))
    return steps
