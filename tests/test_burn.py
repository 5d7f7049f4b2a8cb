"""Error budgets and multi-window burn-rate alerts: pure maths, then the watch on a database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from fractions import Fraction

import pytest

from tests.conftest import config_from
from tests.test_sla_ledger import COMPONENT, outage, window
from uptally.clock import FakeClock
from uptally.config.schema import BurnAlert, Sla
from uptally.evaluator import Outage
from uptally.maintenance.windows import WindowView
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.sla.budget import burn_rate, error_budget, firing, target_fraction
from uptally.sla.ledger import availability
from uptally.store import outages as outage_store
from uptally.store import sla as sla_store
from uptally.store.database import Database
from uptally.store.outages import StoredOutage

M = 60_000
H = 60 * M
DAY = 24 * H
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
FAST, SLOW = Sla().burn_alerts
TARGET = target_fraction(99.9)


def rates(
    outages: list[StoredOutage], now: int, windows: Sequence[WindowView] = ()
) -> dict[int, Fraction]:
    return {
        length: burn_rate(
            availability(COMPONENT, outages, windows, now - length, now, now=now), TARGET
        )
        for length in (5 * M, 30 * M, H, 6 * H)
    }


def test_the_default_alerts_are_the_two_classic_pairs() -> None:
    assert (FAST.long, FAST.short, FAST.factor) == (H, 5 * M, 14.4)
    assert (SLOW.long, SLOW.short, SLOW.factor) == (6 * H, 30 * M, 6)


def test_burn_rate_is_the_downtime_share_over_the_allowed_share() -> None:
    now = T0 + DAY
    burning = rates([outage(now - 3 * M, None)], now)
    assert burning[5 * M] == Fraction(3, 5) / Fraction(1, 1000)  # 600x
    assert burning[H] == Fraction(3, 60) * 1000  # 50x
    assert burning[6 * H] == Fraction(3, 360) * 1000  # 8.3x
    assert firing(burning, FAST)
    assert firing(burning, SLOW)


@pytest.mark.parametrize(
    ("down_minutes", "ago_minutes", "fast", "slow"),
    [
        (0, 0, False, False),
        (1, 0, True, False),  # 1 min in 1 h is 16.7x (and 60x in 5 m); in 6 h only 2.8x
        (3, 0, True, True),  # 3 min in 6 h is 8.3x
        (30, 10, False, True),  # stopped 10 min ago: the 5 m window says the fast burn is over
        (40, 15, False, True),  # 15 of the last 30 min were down
        (50, 50, False, False),  # the short windows are clean
    ],
)
def test_an_alert_needs_both_of_its_windows(
    down_minutes: int, ago_minutes: int, fast: bool, slow: bool
) -> None:
    now = T0 + DAY
    end = now - ago_minutes * M
    found = rates([outage(end - down_minutes * M, end)] if down_minutes else [], now)
    assert (firing(found, FAST), firing(found, SLOW)) == (fast, slow)


def test_maintenance_does_not_burn_the_budget() -> None:
    now = T0 + DAY
    down = [outage(now - 20 * M, None)]
    covered = [window(now - 30 * M, now + H, status="in_progress")]
    assert all(rate == 0 for rate in rates(down, now, covered).values())


def test_the_budget_is_what_the_target_allows_of_the_period() -> None:
    month = 31 * DAY
    down = [outage(T0 + DAY, T0 + DAY + 40 * M)]
    so_far = availability(COMPONENT, down, [], T0, T0 + month, now=T0 + 2 * DAY)
    budget = error_budget(so_far, month, TARGET)
    assert budget.allowed_ms == Fraction(month, 1000)  # 44.64 minutes
    assert budget.consumed_ms == 40 * M
    assert budget.remaining == 1 - Fraction(40 * M * 1000, month)
    assert not budget.exhausted
    over = availability(COMPONENT, [outage(T0 + DAY, T0 + DAY + 45 * M)], [], T0, T0 + month)
    assert error_budget(over, month, TARGET).exhausted


CONFIG = """
site: {timezone: UTC}
monitors:
  - {id: a, kind: http, url: "http://127.0.0.1:9/"}
  - {id: b, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, monitors: [a, b]}
sla:
  policies:
    - {id: scale, target: 99.9, components: [api], credits: [{below: 99.9, credit: 10}]}
  plans: [{id: scale, policy: scale, fee: 100}]
  customers: [{id: acme, plan: scale}]
"""


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    await rt.sla.stop()  # the tests step the watch themselves, never racing its own loop
    yield rt
    await rt.stop()


async def put_outage(runtime: Runtime, start: int, end: int | None, key: str) -> None:
    async with runtime.db.begin() as conn:
        await outage_store.save_outages(
            runtime.db, conn, [Outage(key, "a", start, end, True, {}, "status")], start
        )


async def test_burn_alerts_fire_once_survive_a_restart_and_rearm(
    runtime: Runtime, clock: FakeClock, db_url: str
) -> None:
    clock.advance(10 * DAY)
    now = clock.now_ms()
    await put_outage(runtime, now - 3 * M, None, "o1")
    written = await runtime.sla.step()
    assert [(e.kind, e.subject, e.data["long_window"]) for e in written] == [
        ("sla.burn_rate", "api", "1h"),
        ("sla.burn_rate", "api", "6h"),
    ]
    assert written[0].data["severity"] == "fast"
    clock.advance(M)
    assert await runtime.sla.step() == []  # still firing: not again
    again = Runtime(
        runtime.config, Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    async with again.db.connect() as conn:
        states = await sla_store.alert_states(conn)
    assert {k[2]: v.firing for k, v in states.items()} == {"burn:1h:5m": True, "burn:6h:30m": True}
    await again.db.close()
    # it recovers: both alerts stop (quietly); a new burst fires them again
    await put_outage(runtime, now - 3 * M, now + M, "o1")
    clock.advance(2 * H)
    assert await runtime.sla.step() == []
    async with runtime.db.connect() as conn:
        states = await sla_store.alert_states(conn)
    assert {k[2]: v.firing for k, v in states.items()} == {
        "burn:1h:5m": False,
        "burn:6h:30m": False,
    }
    await put_outage(runtime, clock.now_ms() - 3 * M, None, "o2")
    rearmed = await runtime.sla.step()
    assert [e.data["long_window"] for e in rearmed] == ["1h", "6h"]
    assert runtime.metrics.sla_burn_rate.labels("scale", "api", "5m")._value.get() == 600


async def test_a_breach_is_told_once_per_period(runtime: Runtime, clock: FakeClock) -> None:
    clock.advance(10 * DAY)
    now = clock.now_ms()
    await put_outage(runtime, now - 3 * H, now - 2 * H, "big")  # 60 > 44.64 minutes
    written = await runtime.sla.step()
    breached = [e for e in written if e.kind == "sla.breached"]
    assert len(breached) == 1
    assert breached[0].data["exhausted"] is True
    assert breached[0].data["period"]["label"] == "2026-01"
    assert [e for e in written if e.kind == "sla.breached"] == breached
    clock.advance(M)
    assert [e.kind for e in await runtime.sla.step()] == []
    assert runtime.metrics.sla_budget_remaining.labels("scale", "api")._value.get() < 0


async def test_a_period_is_closed_once_with_its_ledger(runtime: Runtime, clock: FakeClock) -> None:
    clock.advance(5 * DAY)
    await put_outage(runtime, clock.now_ms() - 3 * H, clock.now_ms() - 2 * H, "big")
    await runtime.sla.step()  # uptally watches from here on
    clock.now = T0 + 31 * DAY + 30 * M  # 2026-02-01T00:30: January ended, not yet closed
    assert [e.kind for e in await runtime.sla.step() if e.kind == "sla.period_closed"] == []
    clock.advance(H)
    closed = [e for e in await runtime.sla.step() if e.kind == "sla.period_closed"]
    assert len(closed) == 1
    data = closed[0].data
    assert (closed[0].subject, data["policy"], data["period"]["label"]) == (
        "scale",
        "scale",
        "2026-01",
    )
    [row] = data["components"]
    assert (row["component"], row["downtime_minutes"], row["credit_percent"]) == ("api", 60, 10)
    [acme] = data["customers"]
    assert (acme["customer"], acme["credit_percent"], acme["credit_amount"]) == (
        "acme",
        10,
        "10.00",
    )
    clock.advance(H)
    assert [e for e in await runtime.sla.step() if e.kind == "sla.period_closed"] == []
    async with runtime.db.connect() as conn:
        ledgers = await sla_store.closed_ledgers(conn, "2026-01")
    assert ledgers["scale"]["customers"] == data["customers"]


async def test_periods_before_uptally_watched_are_not_closed(
    runtime: Runtime, clock: FakeClock
) -> None:
    clock.advance(DAY)  # December 2025 ended before the first step
    assert [e.kind for e in await runtime.sla.step() if e.kind == "sla.period_closed"] == []


def test_alert_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter than long"):
        BurnAlert.model_validate({"long": "5m", "short": "1h", "factor": 2})
