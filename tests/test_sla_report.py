"""Reports: rows per policy and component, customer credits, years of monthly policies, latency."""

from __future__ import annotations

import csv
import io
import math
import random
from decimal import Decimal

from tests.conftest import config_from
from tests.test_sla_ledger import DAY, M, outage, window
from uptally import histogram
from uptally.sla.export import ledger_csv, report_csv, report_document
from uptally.sla.latency import ERROR_BOUND, summarize
from uptally.sla.periods import parse_period
from uptally.sla.report import Inputs, build_report, config_exclusions

CONFIG = """
site: {timezone: Europe/Berlin}
monitors:
  - {id: api-eu, kind: http, url: "http://x/", slo: {latency_p99: 200ms}}
  - {id: api-us, kind: http, url: "http://x/"}
  - {id: web, kind: http, url: "http://x/"}
components:
  - {id: api, monitors: [api-eu, api-us], slo: {latency_p50: 50ms, latency_p99: 250ms}}
  - {id: web, monitors: [web]}
sla:
  policies:
    - id: scale
      target: 99.9
      components: [api, web]
      credits: [{below: 99.9, credit: 10}, {below: 99.0, credit: 25}, {below: 95.0, credit: 70}]
    - id: quarterly
      target: 99.5
      period: quarter
      components: [api]
      credits: [{below: 99.5, credit: 5}]
  plans:
    - {id: free, name: Free}
    - {id: scale, name: Scale, policy: scale, fee: 499.00, currency: EUR}
    - {id: enterprise, policy: scale, fee: 2000}
  customers:
    - {id: acme, plan: scale}
    - {id: globex, plan: enterprise, components: [web], fee: 1500}
    - {id: hobby, plan: free}
  exclusions:
    - {start: 2026-03-10T00:00, end: 2026-03-10T06:00, reason: upstream provider, component: web}
"""


def test_a_month_report_gives_rows_customers_and_credits() -> None:
    config = config_from(CONFIG)
    march = parse_period("2026-03", "Europe/Berlin")
    start = march.start + 5 * DAY
    inputs = Inputs(
        outages=[
            outage(start, start + 120 * M, "api-eu"),  # 2 h down: 99.73 %
            outage(start + 60 * M, start + 90 * M, "api-us"),  # overlaps, counts once
            outage(march.start + 9 * DAY - 60 * M, march.start + 9 * DAY + 3 * 60 * M, "web"),
        ],
        windows=[window(start + 100 * M, start + 120 * M, components=("api",))],
        exclusions=config_exclusions(config),
    )
    report = build_report(config, march, inputs, now=march.end + DAY, policies={"scale"})
    document = report_document(report)
    assert document["period"] == {
        "label": "2026-03",
        "kind": "month",
        "start": "2026-02-28T23:00:00.000Z",
        "end": "2026-03-31T22:00:00.000Z",
        "timezone": "Europe/Berlin",
        "final": True,
        "measured_until": "2026-03-31T22:00:00.000Z",
    }
    api, web = document["rows"]
    minutes = (31 * 24 - 1) * 60
    assert api["component"] == "api"
    assert (api["downtime_minutes"], api["excluded_minutes"]) == (100, 20)
    assert api["uptime_percent"] == math.floor((1 - 100 / (minutes - 20)) * 100 * 10**4) / 10**4
    assert (api["met"], api["credit_percent"]) == (False, 10)
    assert [o["monitor"] for o in api["outages"]] == ["api-eu", "api-us"]
    # web: down 23:00-03:00 local; the exclusion 00:00-06:00 takes 3 h of it
    assert web["excluded_minutes"] == 360
    assert web["downtime_minutes"] == 60
    by_customer = {c["customer"]: c for c in document["customers"]}
    assert by_customer["acme"]["components"] == ["api", "web"]
    assert by_customer["acme"]["uptime_percent"] == min(
        api["uptime_percent"], web["uptime_percent"]
    )
    assert (by_customer["acme"]["credit_percent"], by_customer["acme"]["credit_amount"]) == (
        10,
        "49.90",
    )
    assert by_customer["globex"]["components"] == ["web"]
    assert (by_customer["globex"]["credit_percent"], by_customer["globex"]["credit_amount"]) == (
        10,
        "150.00",  # its own fee, its own component (web: 99.86 %)
    )
    assert by_customer["hobby"] == {
        "period": "2026-03",
        "customer": "hobby",
        "name": None,
        "plan": "free",
        "policy": None,
        "components": [],
        "uptime_percent": None,
        "met": None,
        "credit_percent": 0.0,
        "fee": None,
        "currency": None,
        "credit_amount": None,
    }
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert rows[0]["uptime_percent"] == str(api["uptime_percent"])
    assert rows[0]["outages"] == " ".join(o["id"] for o in api["outages"])
    ledger = list(csv.DictReader(io.StringIO(ledger_csv(report))))
    assert [r["customer"] for r in ledger] == ["acme", "globex", "hobby"]
    assert ledger[0]["credit_amount"] == "49.90"


def test_a_year_of_a_monthly_policy_averages_monthly_credits_and_sums_amounts() -> None:
    config = config_from(CONFIG)
    year = parse_period("2026", "Europe/Berlin")
    feb = parse_period("2026-02", "Europe/Berlin")
    jul = parse_period("2026-07", "Europe/Berlin")
    inputs = Inputs(
        outages=[
            outage(feb.start + DAY, feb.start + DAY + 60 * M, "api-eu"),  # Feb: 99.85 % → 10 %
            outage(jul.start + DAY, jul.start + DAY + 15 * 60 * M, "api-eu"),  # Jul: 97.98 → 25 %
        ],
        windows=[],
    )
    report = build_report(config, year, inputs, now=year.end + DAY, policies={"scale"})
    api = report.rows[0]
    assert api.component == "api"
    assert len(api.parts) == 12
    assert [p.credit_percent for p in api.parts if p.credit_percent] == [10, 25]
    assert api.credit_percent == round(35 / 12, 4)
    assert api.availability.downtime_ms == 16 * 60 * M
    acme = next(c for c in report.customers if c.customer.id == "acme")
    assert acme.credit_amount == (Decimal("499.00") * Decimal("0.35")).quantize(Decimal("0.01"))
    document = report_document(report)
    assert [p["label"] for p in document["rows"][0]["periods"]][:2] == ["2026-01", "2026-02"]


def test_a_month_of_a_quarterly_policy_has_no_credit_yet() -> None:
    config = config_from(CONFIG)
    april = parse_period("2026-04", "UTC")
    report = build_report(config, april, Inputs([], []), now=april.end, policies={"quarterly"})
    assert [(r.policy.id, r.credit_percent) for r in report.rows] == [("quarterly", None)]
    quarter = parse_period("2026-Q2", "UTC")
    report = build_report(config, quarter, Inputs([], []), now=quarter.end, policies={"quarterly"})
    assert report.rows[0].credit_percent == 0


def test_a_period_in_progress_is_measured_until_now() -> None:
    config = config_from(CONFIG)
    march = parse_period("2026-03", "Europe/Berlin")
    now = march.start + 10 * DAY
    open_outage = outage(now - 30 * M, None, "web")
    report = build_report(config, march, Inputs([open_outage], []), now=now, policies={"scale"})
    web = report.rows[1]
    assert web.availability.span_ms == 10 * DAY
    assert web.availability.downtime_ms == 30 * M
    assert not report.final


def test_latency_percentiles_come_from_merged_histograms_within_the_bound() -> None:
    config = config_from(CONFIG)
    rng = random.Random(7)
    truth: dict[str, list[float]] = {"api-eu": [], "api-us": []}
    hours: dict[str, list[dict[int, int]]] = {"api-eu": [], "api-us": []}
    for monitor, scale in (("api-eu", 60.0), ("api-us", 140.0)):
        for _ in range(48):  # two days of hourly rollups, one check a minute
            counts: dict[int, int] = {}
            for _ in range(60):
                latency = rng.lognormvariate(math.log(scale), 0.4)
                truth[monitor].append(latency)
                histogram.add(counts, latency)
            hours[monitor].append(counts)
    merged = {m: histogram.merge(h) for m, h in hours.items()}
    report = build_report(
        config, parse_period("2026-03", "UTC"), Inputs([], [], histograms=merged), now=0
    )
    rows = {(r.scope, r.id): r for r in report.latency}
    eu = rows[("monitor", "api-eu")]
    exact = sorted(truth["api-eu"])
    true_p99 = exact[math.ceil(0.99 * len(exact)) - 1]
    assert eu.latency.count == 48 * 60
    assert eu.latency.p99 is not None
    assert abs(eu.latency.p99 - true_p99) / true_p99 <= ERROR_BOUND + 1e-9
    assert eu.targets == {"p99": 200}
    assert eu.met is (eu.latency.p99 <= 200)
    api = rows[("component", "api")]
    both = sorted(truth["api-eu"] + truth["api-us"])
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        value = api.latency.quantile(name)
        true = both[math.ceil(q * len(both)) - 1]
        assert value is not None
        assert abs(value - true) / true <= ERROR_BOUND + 1e-9
    assert api.targets == {"p50": 50, "p99": 250}
    assert summarize({}).p99 is None
