"""What the incidents console shows beyond the stored incident: commitment clocks, outages
that have no incident yet (with the template's draft), and the subscribers' preview."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis, to_datetime
from uptally.config.schema import Component, Config
from uptally.evaluator import Outage
from uptally.incidents.automation import Draft, Signal, draft
from uptally.incidents.commitments import Commitment, Kind, Rules
from uptally.incidents.model import Incident, Status
from uptally.incidents.texts import format_duration, format_time
from uptally.incidents.transitions import Components, post_update
from uptally.notify import mail
from uptally.notify.render import render
from uptally.store import outages as outage_store


@dataclass(frozen=True, slots=True)
class ClockView:
    """A commitment not yet kept, worded and coloured: ok, soon (reminder time) or late."""

    kind: str
    text: str
    css: str  # clock-ok | clock-soon | clock-late
    due_at: Millis
    what: str = ""  # for the page's script to count on: "" for postmortems (a day, not minutes)
    remind: Millis = 0


_WHAT = {Kind.FIRST_POST: "first post", Kind.UPDATE: "next update", Kind.POSTMORTEM: "postmortem"}


def _minutes(ms: Millis) -> str:
    if ms < 60_000:
        return "under a minute"
    return format_duration(ms // 60_000 * 60_000)


def _day(at: Millis, timezone: str) -> str:
    local = to_datetime(at - 1).astimezone(ZoneInfo(timezone))  # due at midnight: that day
    return f"{local:%a} {local.day} {local:%b}"


def clock_of(commitment: Commitment, now: Millis, rules: Rules, timezone: str) -> ClockView:
    what = _WHAT[commitment.kind]
    left = commitment.due_at - now
    if commitment.kind is Kind.POSTMORTEM:
        day = _day(commitment.due_at, timezone)
        text = f"{what} overdue since {day}" if left <= 0 else f"{what} due {day}"
    elif left <= 0:
        text = f"{what} overdue by {_minutes(-left)}"
    else:
        text = f"{what} due in {_minutes(left)}"
    css = "clock-ok"
    if left <= 0:
        css = "clock-late"
    elif left <= rules.remind.get(commitment.kind, 0):  # the reminder has gone out
        css = "clock-soon"
    remind = rules.remind.get(commitment.kind, 0)
    counting = "" if commitment.kind is Kind.POSTMORTEM else what
    return ClockView(commitment.kind.value, text, css, commitment.due_at, counting, remind)


def clocks(
    commitments: Iterable[Commitment], now: Millis, rules: Rules, timezone: str
) -> list[ClockView]:
    """The clocks still running (unfulfilled commitments), soonest first."""
    pending = sorted((c for c in commitments if not c.fulfilled), key=lambda c: c.due_at)
    return [clock_of(c, now, rules, timezone) for c in pending]


@dataclass(frozen=True, slots=True)
class OpenOutage:
    outage: Outage
    monitor: str  # its title
    components: list[Component]
    incident: Incident | None  # an open incident that already covers it


def components_of(monitor: str, config: Config) -> list[Component]:
    return [c for c in config.components if monitor in c.monitors]


async def open_outages(
    conn: AsyncConnection, config: Config, now: Millis, incidents: Sequence[Incident]
) -> list[OpenOutage]:
    """Verified outages still open, each with the open incident covering it (if any)."""
    found = await outage_store.list_outages(conn, since=now, verified_only=True, limit=200)
    rows: list[OpenOutage] = []
    for stored in found:
        outage = stored.outage
        if not outage.open or not outage.monitor:
            continue
        monitor = config.monitor(outage.monitor)
        components = components_of(outage.monitor, config)
        ids = {c.id for c in components}
        holder = next(
            (
                i
                for i in incidents
                if i.status.open and (outage.monitor in i.outages or ids & set(i.components))
            ),
            None,
        )
        title = monitor.title if monitor is not None else outage.monitor
        rows.append(OpenOutage(outage, title, components, holder))
    return rows


def outage_draft(outage: Outage, config: Config, now: Millis) -> Draft:
    """The incident the template words for this outage (as automation would declare it)."""
    signal = Signal(
        down=True,
        monitor=outage.monitor,
        outage=outage.id,
        at=now,
        start=outage.start,
        locations=tuple(sorted(outage.locations)),
        reason=outage.reason,
    )
    return draft(signal, components_of(outage.monitor, config), config)


@dataclass(frozen=True, slots=True)
class Preview:
    subject: str
    text: str


PREVIEW_ADDRESS = "subscriber@example.com"


def subscriber_preview(
    config: Config,
    incident: Incident,
    status: Status | None,
    message: str,
    components: Components | None,
    now: Millis,
) -> Preview:
    """The e-mail a subscriber would receive for this update (rendered as the notifier does)."""
    change = post_update(
        incident,
        status=status,
        message=message or "(your message)",
        components=components,
        actor="preview",
        now=now,
        update_id="preview",
    )
    event = change.events[0]
    notice = render(event.kind.value, event.subject, event.data, config)
    unsubscribe = (config.site.url or "https://status.example.com") + "/unsubscribe/…"
    built = mail.notice(PREVIEW_ADDRESS, config.site.title, notice, unsubscribe, "preview")
    body = built.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else notice.body
    return Preview(str(built["Subject"]), str(text))


def when(at: Millis | None, timezone: str) -> str:
    return format_time(at, timezone) if at is not None else ""


def affected_names(components: Mapping[str, object], config: Config) -> list[str]:
    titles = {c.id: c.title for c in config.components}
    return [titles.get(name, name) for name in sorted(components)]
