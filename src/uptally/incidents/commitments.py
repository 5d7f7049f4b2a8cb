"""Communication commitments (pure, injected time): first post, update cadence, postmortem.

Per incident: a first public update within `first_post` of the declaration; while it is open,
the next update within `update_every` of the previous one; after resolution, a postmortem
within `postmortem_days` business days when a component was down longer than
`postmortem_after_down`. A commitment is met when fulfilled by its due time and missed
otherwise (it stays missed when fulfilled late). Shortly before the due time it raises a
reminder (`due`), and once when it passes unfulfilled (`overdue`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from uptally.clock import Millis
from uptally.config.schema import Commitments as Settings
from uptally.events import Event, EventKind
from uptally.incidents.calendar import BusinessCalendar
from uptally.incidents.model import DOWN_STATUSES, Incident, Update


class Kind(StrEnum):
    FIRST_POST = "first_post"
    UPDATE = "update"
    POSTMORTEM = "postmortem"


class State(StrEnum):
    PENDING = "pending"
    MET = "met"
    MISSED = "missed"


@dataclass(frozen=True, slots=True)
class Commitment:
    id: str
    incident: str
    kind: Kind
    opened_at: Millis
    due_at: Millis
    state: State = State.PENDING
    met_at: Millis | None = None  # when it was fulfilled (late ones stay missed)
    reminded_at: Millis | None = None
    overdue_at: Millis | None = None

    @property
    def fulfilled(self) -> bool:
        return self.met_at is not None


@dataclass(frozen=True, slots=True)
class Rules:
    first_post: Millis
    update_every: Millis
    postmortem_days: int
    postmortem_after_down: Millis
    remind: Mapping[Kind, Millis]
    calendar: BusinessCalendar

    @classmethod
    def from_settings(cls, settings: Settings, calendar: BusinessCalendar) -> Rules:
        return cls(
            settings.first_post,
            settings.update_every,
            settings.postmortem_days,
            settings.postmortem_after_down,
            {
                Kind.FIRST_POST: settings.remind_first_post,
                Kind.UPDATE: settings.remind_update,
                Kind.POSTMORTEM: settings.remind_postmortem,
            },
            calendar,
        )


@dataclass(frozen=True, slots=True)
class Reminder:
    commitment: Commitment
    state: str  # due | overdue


Ids = Callable[[], str]


def declared(incident: Incident, now: Millis, rules: Rules, new_id: Ids) -> list[Commitment]:
    """Commitments of a new incident (its first post may already be there)."""
    first = Commitment(
        new_id(),
        incident.id,
        Kind.FIRST_POST,
        incident.created_at,
        incident.created_at + rules.first_post,
    )
    if incident.last_post_at is None:
        return [first]
    return [fulfil(first, now), *_next_update(incident, now, rules, new_id)]


def posted(
    pending: Iterable[Commitment],
    incident: Incident,
    now: Millis,
    rules: Rules,
    new_id: Ids,
    downtime: Mapping[str, Millis] | None = None,
    has_postmortem_commitment: bool = False,
) -> list[Commitment]:
    """A public update was posted: fulfil what it fulfils, open what comes next.

    `downtime` (per component, needed once the incident is resolved) decides whether a
    postmortem is owed.
    """
    changed = [
        fulfil(c, now)
        for c in pending
        if not c.fulfilled and c.kind in (Kind.FIRST_POST, Kind.UPDATE)
    ]
    changed.extend(_next_update(incident, now, rules, new_id))
    if not incident.status.open and not has_postmortem_commitment:
        longest = max((downtime or {}).values(), default=0)
        if longest > rules.postmortem_after_down:
            resolved = incident.resolved_at or now
            due = rules.calendar.due_after(resolved, rules.postmortem_days)
            changed.append(Commitment(new_id(), incident.id, Kind.POSTMORTEM, resolved, due))
    return changed


def postmortem_published(pending: Iterable[Commitment], now: Millis) -> list[Commitment]:
    return [fulfil(c, now) for c in pending if not c.fulfilled and c.kind is Kind.POSTMORTEM]


def fulfil(commitment: Commitment, now: Millis) -> Commitment:
    state = (
        State.MET
        if now <= commitment.due_at and commitment.state is not State.MISSED
        else (State.MISSED)
    )
    return replace(commitment, met_at=now, state=state)


def review(
    pending: Iterable[Commitment], now: Millis, rules: Rules
) -> tuple[list[Commitment], list[Reminder]]:
    """Which unfulfilled commitments are due soon or overdue (each announced once)."""
    changed: list[Commitment] = []
    reminders: list[Reminder] = []
    for commitment in pending:
        if commitment.fulfilled:
            continue
        if now >= commitment.due_at:
            if commitment.overdue_at is None:
                late = replace(commitment, state=State.MISSED, overdue_at=now)
                changed.append(late)
                reminders.append(Reminder(late, "overdue"))
        elif commitment.reminded_at is None and now >= commitment.due_at - rules.remind.get(
            commitment.kind, 0
        ):
            due = replace(commitment, reminded_at=now)
            changed.append(due)
            reminders.append(Reminder(due, "due"))
    return changed, reminders


def reminder_event(reminder: Reminder, title: str, components: Sequence[str], now: Millis) -> Event:
    c = reminder.commitment
    data = {
        "incident": c.incident,
        "title": title,
        "components": list(components),
        "commitment": c.kind.value,
        "state": reminder.state,
        "due_at": c.due_at,
        "opened_at": c.opened_at,
    }
    return Event(EventKind.COMMITMENT_DUE, now, c.incident, data)


Spans = dict[str, list[tuple[Millis, Millis]]]


def down_spans(incident: Incident, updates: Sequence[Update], now: Millis) -> Spans:
    """When each component was partially or fully down, from the incident's own timeline."""
    spans: Spans = {}
    ordered = sorted(updates, key=lambda u: u.created_at)
    end_of_all = incident.resolved_at or now
    for index, update in enumerate(ordered):
        start = incident.started_at if index == 0 else update.created_at
        end = ordered[index + 1].created_at if index + 1 < len(ordered) else end_of_all
        for name, status in update.components.items():
            if status in DOWN_STATUSES and end > start:
                spans.setdefault(name, []).append((start, end))
    return spans


def downtime(spans: Spans) -> dict[str, Millis]:
    return {name: covered(intervals) for name, intervals in spans.items()}


def covered(intervals: Iterable[tuple[Millis, Millis]]) -> Millis:
    """Total length of a union of intervals."""
    total = 0
    current_start: Millis | None = None
    current_end: Millis = 0
    for start, end in sorted(intervals):
        if current_start is None or start > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None:
        total += current_end - current_start
    return total


def _next_update(incident: Incident, now: Millis, rules: Rules, new_id: Ids) -> list[Commitment]:
    if not incident.status.open:
        return []
    return [Commitment(new_id(), incident.id, Kind.UPDATE, now, now + rules.update_every)]
