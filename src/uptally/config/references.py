"""Cross-references in a raw config: duplicate ids and names that point at nothing.

Works on the raw YAML data so that reference errors are reported together with schema errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from uptally.conditions import variables_in

PathKey = tuple[str | int, ...]


def check_references(data: dict[str, Any]) -> list[tuple[PathKey, str]]:
    return list(_problems(data))


def _items(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _duplicates(
    items: list[tuple[int, dict[str, Any]]], section: str, field: str
) -> Iterator[tuple[PathKey, str]]:
    seen: dict[Any, int] = {}
    for index, item in items:
        value = item.get(field)
        if not isinstance(value, str):
            continue
        if value in seen:
            yield (
                (section, index, field),
                f"duplicate {field} {value!r} (first used in {section}[{seen[value]}])",
            )
        else:
            seen[value] = index


def _problems(data: dict[str, Any]) -> Iterator[tuple[PathKey, str]]:
    monitors = _items(data, "monitors")
    components = _items(data, "components")
    locations = _items(data, "locations")
    yield from _duplicates(monitors, "monitors", "id")
    yield from _duplicates(components, "components", "id")
    yield from _duplicates(locations, "locations", "name")
    yield from _duplicates(_items(data, "maintenance"), "maintenance", "id")
    pages = _items(data, "status_pages")
    yield from _duplicates(pages, "status_pages", "id")
    yield from _duplicates(pages, "status_pages", "path")
    sla = data.get("sla") if isinstance(data.get("sla"), dict) else {}
    policies = _items(sla, "policies")
    yield from (
        (("sla", *path), message) for path, message in _duplicates(policies, "policies", "id")
    )
    notifications = data.get("notifications") if isinstance(data.get("notifications"), dict) else {}
    channels = _items(notifications, "channels")
    yield from (
        (("notifications", *path), message)
        for path, message in _duplicates(channels, "channels", "id")
    )

    monitor_ids = {m.get("id") for _, m in monitors}
    component_ids = {c.get("id") for _, c in components}
    location_names = {"local"} | {loc.get("name") for _, loc in locations}

    # A heartbeat's ping addresses: each one names one monitor.
    addresses: dict[str, dict[str, int]] = {"token": {}, "uuid": {}, "slug": {}}
    for index, monitor in monitors:
        locs = monitor.get("locations", ["local"])  # the schema's default
        if isinstance(locs, list):
            listed: set[str] = set()
            for j, name in enumerate(locs):
                if not isinstance(name, str):
                    continue
                if name not in location_names:
                    yield ("monitors", index, "locations", j), f"unknown location {name!r}"
                elif name in listed:
                    yield ("monitors", index, "locations", j), f"location {name!r} is listed twice"
                listed.add(name)
            consensus = monitor.get("consensus")
            quorum = consensus.get("quorum") if isinstance(consensus, dict) else None
            count = len(set(locs))
            if isinstance(quorum, int) and not isinstance(quorum, bool) and quorum > count:
                yield (
                    ("monitors", index, "consensus", "quorum"),
                    f"quorum {quorum} is more than the {count} location(s) of this monitor",
                )
        yield from _monitor_variables(monitor, ("monitors", index))
        for field, taken in addresses.items():
            value = monitor.get(field)
            if isinstance(value, str):
                value = value.lower() if field == "uuid" else value
                if value in taken:
                    yield (
                        ("monitors", index, field),
                        f"{field} already used by monitors[{taken[value]}]",
                    )
                taken[value] = index

    for index, component in components:
        refs = component.get("monitors")
        if isinstance(refs, list):
            for j, ref in enumerate(refs):
                if isinstance(ref, str) and ref not in monitor_ids:
                    yield ("components", index, "monitors", j), f"unknown monitor {ref!r}"

    for index, page in pages:
        yield from _refs(page, ("status_pages", index), "components", component_ids, "component")
    for index, window in _items(data, "maintenance"):
        yield from _refs(window, ("maintenance", index), "components", component_ids, "component")
        yield from _refs(window, ("maintenance", index), "monitors", monitor_ids, "monitor")
    for index, policy in policies:
        yield from _refs(
            policy, ("sla", "policies", index), "components", component_ids, "component"
        )
    yield from _sla_problems(sla, policies, component_ids)
    for index, channel in channels:
        base: PathKey = ("notifications", "channels", index)
        yield from _refs(channel, base, "components", component_ids, "component")
        yield from _refs(channel, base, "monitors", monitor_ids, "monitor")


def _sla_problems(
    sla: Any, policies: list[tuple[int, dict[str, Any]]], component_ids: set[Any]
) -> Iterator[tuple[PathKey, str]]:
    """Plans name policies, customers name plans and (a subset of their policy's) components."""
    plans = _items(sla, "plans")
    customers = _items(sla, "customers")
    yield from ((("sla", *p), m) for p, m in _duplicates(plans, "plans", "id"))
    yield from ((("sla", *p), m) for p, m in _duplicates(customers, "customers", "id"))
    by_policy = {p.get("id"): p for _, p in policies}
    plan_policy = {p.get("id"): p.get("policy") for _, p in plans}
    for index, item in plans:
        name = item.get("policy")
        if isinstance(name, str) and name not in by_policy:
            yield ("sla", "plans", index, "policy"), f"unknown SLA policy {name!r}"
    for index, customer in customers:
        plan = customer.get("plan")
        if isinstance(plan, str) and plan not in plan_policy:
            yield ("sla", "customers", index, "plan"), f"unknown plan {plan!r}"
            continue
        yield from _refs(
            customer, ("sla", "customers", index), "components", component_ids, "component"
        )
        policy = by_policy.get(plan_policy.get(plan))
        covered = policy.get("components") if isinstance(policy, dict) else None
        refs = customer.get("components")
        if isinstance(covered, list) and covered and isinstance(refs, list):
            for j, ref in enumerate(refs):
                if isinstance(ref, str) and ref in component_ids and ref not in covered:
                    yield (
                        ("sla", "customers", index, "components", j),
                        f"component {ref!r} is not covered by the plan's SLA policy",
                    )
    for index, exclusion in _items(sla, "exclusions"):
        base: PathKey = ("sla", "exclusions", index)
        component, policy_id = exclusion.get("component"), exclusion.get("policy")
        if isinstance(component, str) and component not in component_ids:
            yield (*base, "component"), f"unknown component {component!r}"
        if isinstance(policy_id, str) and policy_id not in by_policy:
            yield (*base, "policy"), f"unknown SLA policy {policy_id!r}"
    public = sla.get("public_policy")
    if isinstance(public, str) and public not in by_policy:
        yield ("sla", "public_policy"), f"unknown SLA policy {public!r}"


def _refs(
    item: dict[str, Any], base: PathKey, field: str, known: set[Any], what: str
) -> Iterator[tuple[PathKey, str]]:
    refs = item.get(field)
    if isinstance(refs, list):
        for j, ref in enumerate(refs):
            if isinstance(ref, str) and ref not in known:
                yield (*base, field, j), f"unknown {what} {ref!r}"


# -- ${variables}: only what an earlier step (or exchange) captured can be used ---------------

_NOT_TEMPLATED = frozenset({"capture", "conversation", "kind", "name", "description", "steps"})


def _monitor_variables(monitor: dict[str, Any], base: PathKey) -> Iterator[tuple[PathKey, str]]:
    if monitor.get("kind") == "scenario":
        known: set[str] = set()
        steps = monitor.get("steps")
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict):
                yield from _step_variables(step, (*base, "steps", j), known)
                known |= _captured(step)
                conversation = step.get("conversation")
                for exchange in conversation if isinstance(conversation, list) else []:
                    if isinstance(exchange, dict):
                        known |= _captured(exchange)  # a tcp step passes these on too
    elif monitor.get("kind") == "tcp":
        yield from _step_variables(monitor, base, set())
    else:  # nothing is ever captured here: a ${name} in a condition can never hold
        expect = monitor.get("expect")
        for j, condition in enumerate(expect if isinstance(expect, list) else []):
            yield from _unknown(
                condition,
                (*base, "expect", j),
                set(),
                "only scenario steps and tcp conversations capture",
            )


def _step_variables(
    step: dict[str, Any], base: PathKey, known: set[str]
) -> Iterator[tuple[PathKey, str]]:
    """A step may use what earlier steps captured and what its own conversation captures."""
    available = set(known)
    conversation = step.get("conversation")
    exchanges = conversation if isinstance(conversation, list) else []
    for exchange in exchanges:
        if isinstance(exchange, dict):
            available |= _captured(exchange)
    for key, value in step.items():
        if key not in _NOT_TEMPLATED:
            yield from _unknown(value, (*base, key), available)
    seen = set(known)
    for k, exchange in enumerate(exchanges):
        if isinstance(exchange, dict):
            for key, value in exchange.items():
                if key not in _NOT_TEMPLATED:
                    yield from _unknown(value, (*base, "conversation", k, key), seen)
            seen |= _captured(exchange)


def _captured(item: dict[str, Any]) -> set[str]:
    capture = item.get("capture")
    return (
        {name for name in capture if isinstance(name, str)} if isinstance(capture, dict) else set()
    )


def _unknown(
    value: Any, path: PathKey, known: set[str], why: str = "no earlier step captures it"
) -> Iterator[tuple[PathKey, str]]:
    if isinstance(value, str):
        for name in dict.fromkeys(variables_in(value)):
            if name not in known:
                yield path, f"unknown variable ${{{name}}}: {why}"
    elif isinstance(value, list):
        for j, item in enumerate(value):
            yield from _unknown(item, (*path, j), known, why)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown(item, (*path, key), known, why)
