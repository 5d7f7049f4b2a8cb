"""Prometheus instruments of one uptally process (own registry: no globals, testable)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.checks = Counter(
            "uptally_checks",
            "Checks run, by kind and outcome.",
            ["kind", "location", "result"],
            registry=r,
        )
        self.check_errors = Counter(
            "uptally_check_errors", "Failed checks by error code.", ["kind", "error"], registry=r
        )
        self.check_latency = Histogram(
            "uptally_check_latency_seconds",
            "Check latency.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "uptally_scheduler_lateness_seconds",
            "How late checks start after they are due.",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("uptally_checks_in_flight", "Checks running now.", registry=r)
        self.scheduled = Gauge(
            "uptally_monitors_scheduled", "Monitors on the scheduler.", registry=r
        )
        self.queue_depth = Gauge(
            "uptally_ingest_queue_depth", "Results and pings waiting to be written.", registry=r
        )
        self.stored = Counter(
            "uptally_results_stored", "Results written to the database.", registry=r
        )
        self.dropped = Counter(
            "uptally_results_dropped",
            "Results dropped: the write queue, or while writes fail the held buffer, was full.",
            registry=r,
        )
        self.rejected = Counter(
            "uptally_results_rejected", "Results not evaluated, by reason.", ["reason"], registry=r
        )
        self.batch_seconds = Histogram(
            "uptally_ingest_batch_seconds",
            "Time to write one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "uptally_ingest_batch_size",
            "Results per written batch.",
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000),
            registry=r,
        )
        self.write_errors = Counter(
            "uptally_ingest_write_errors", "Failed batch writes (retried).", registry=r
        )
        self.store_write_failures = Counter(
            "uptally_store_write_failures",
            "Database writes of the writer that failed (each retry counts).",
            registry=r,
        )
        self.store_writes_failing_since = Gauge(
            "uptally_store_writes_failing_since_seconds",
            "Since when database writes fail (Unix time; 0 while they succeed).",
            registry=r,
        )
        self.store_held = Gauge(
            "uptally_store_held",
            "Results evaluated but held in memory because database writes fail.",
            registry=r,
        )
        self.events = Counter(
            "uptally_events",
            "Events recorded in the outbox, every kind (counted once, where they are routed).",
            ["kind"],
            registry=r,
        )
        self.pings = Counter("uptally_pings", "Heartbeat pings received.", ["kind"], registry=r)
        self.monitors = Gauge(
            "uptally_monitors", "Monitors by current state.", ["state"], registry=r
        )
        self.monitor_up = _MonitorsUp()
        r.register(self.monitor_up)
        self.last_backup = Gauge(
            "uptally_last_backup_timestamp_seconds",
            "When the newest backup was made (Unix time; 0 before the first).",
            registry=r,
        )
        self.offsite_backups = Counter(
            "uptally_backup_offsite",
            "Off-site copies of backups, by result (ok | failed).",
            ["result"],
            registry=r,
        )
        self.last_offsite_backup = Gauge(
            "uptally_last_offsite_backup_timestamp_seconds",
            "When the newest backup copied off-site was made (Unix time; 0 before the first).",
            registry=r,
        )
        self.auth_failures = Counter(
            "uptally_auth_failures", "Refused API credentials, by reason.", ["reason"], registry=r
        )
        self.probe_results = Counter(
            "uptally_probe_results",
            "Results pushed by remote probes, by location and outcome.",
            ["location", "outcome"],  # accepted | duplicate | unassigned | skewed
            registry=r,
        )
        self.probe_batches_rejected = Counter(
            "uptally_probe_batches_rejected",
            "Batches from remote probes refused whole, by location and reason.",
            ["location", "reason"],  # invalid | out_of_range | clock_skew | unassigned | store
            registry=r,
        )
        self.probe_dropped = Counter(
            "uptally_probe_dropped",
            "Results remote probes dropped from full queues (reported summaries).",
            ["location"],
            registry=r,
        )
        self.probe_auth_failures = Counter(
            "uptally_probe_auth_failures", "Probe requests with a wrong token.", registry=r
        )
        self.probe_state = Gauge(
            "uptally_probe_up",
            "1 if the location is up, 0 if degraded or offline.",
            ["location"],
            registry=r,
        )
        self.probe_clock_offset = Gauge(
            "uptally_probe_clock_offset_seconds",
            "Hub time minus the probe's clock.",
            ["location"],
            registry=r,
        )
        # -- a remote probe agent's own view (`uptally probe --metrics-listen`) ---------------
        self.agent_hub_reachable = Gauge(
            "uptally_agent_hub_reachable",
            "1 if the agent's last exchange with the hub succeeded, else 0.",
            registry=r,
        )
        self.agent_hub_unreachable_since = Gauge(
            "uptally_agent_hub_unreachable_since_seconds",
            "Since when the hub has been unreachable (Unix time; 0 while it answers).",
            registry=r,
        )
        self.agent_queue_depth = Gauge(
            "uptally_agent_queue_depth", "Results queued on disk for the hub.", registry=r
        )
        self.agent_network_ok = Gauge(
            "uptally_agent_network_ok",
            "1 unless the agent's canaries say its own network is broken (results degraded).",
            registry=r,
        )
        self.agent_canary_up = Gauge(
            "uptally_agent_canary_up",
            "1 if the canary answered its last check.",
            ["target"],
            registry=r,
        )
        # -- notifications (issue 5): label `channel` is a channel id, or `subscribers` --------
        self.deliveries = Counter(
            "uptally_deliveries",
            "Deliveries finished, by channel and outcome (delivered | failed | suppressed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_attempts = Counter(
            "uptally_delivery_attempts",
            "Delivery attempts, by channel and outcome (delivered | transient | permanent).",
            ["channel", "outcome"],
            registry=r,
        )
        self.deliveries_pending = Gauge(
            "uptally_deliveries_pending", "Deliveries waiting, by channel.", ["channel"], registry=r
        )
        self.deliveries_within_1h = Gauge(
            "uptally_deliveries_within_1h_ratio",
            "Share of the last 24 h's deliveries that arrived within 1 h (undecided excluded).",
            ["channel"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "uptally_delivery_latency_seconds",
            "From the event being recorded to its delivery.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.commitment_reminders = Counter(
            "uptally_commitment_reminders",
            "commitment.due events raised, by commitment and state (due | overdue).",
            ["commitment", "state"],
            registry=r,
        )
        # maintenance and the SLA ledger
        self.maintenance_active = Gauge(
            "uptally_maintenance_active", "Maintenance windows in effect now.", registry=r
        )
        self.events_suppressed = Counter(
            "uptally_events_suppressed",
            "Events marked suppressed by maintenance (recorded, not delivered).",
            ["kind"],
            registry=r,
        )
        self.sla_budget_remaining = Gauge(
            "uptally_sla_error_budget_remaining_ratio",
            "Share of the current period's error budget left (negative: overspent).",
            ["policy", "component"],
            registry=r,
        )
        self.sla_burn_rate = Gauge(
            "uptally_sla_burn_rate",
            "Error budget burn rate over a window (1: spends the budget exactly by period end).",
            ["policy", "component", "window"],
            registry=r,
        )

    def set_monitors_up(self, states: Iterable[tuple[str, str, bool]]) -> None:
        """Replace every `uptally_monitor_up` series: (monitor, location, up) of those known."""
        self.monitor_up.states = list(states)


class _MonitorsUp(Collector):
    """`uptally_monitor_up`, written from the states of the last scrape as it is read. Not a
    Gauge: a Gauge keeps an object per series, with a lock and a value of its own (about 1.5 KB:
    15 MB at 10,000 monitors, made again at every scrape)."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str, bool]] = []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "uptally_monitor_up",
            "1 if the monitor's checks from the location pass, 0 if it is down there "
            "(absent while unknown).",
            labels=["monitor", "location"],
        )
        for monitor, location, up in self.states:
            family.add_metric([monitor, location], 1 if up else 0)
        yield family
