"""The agent's durable queue: ordered, idempotent, bounded with summaries, survives restarts."""

from __future__ import annotations

from pathlib import Path

from uptally.probe.queue import ResultQueue
from uptally.results import Result

NOW = 1_767_225_600_000


def result(n: int, ok: bool = True, monitor: str = "api", at: int | None = None) -> Result:
    return Result(
        f"id{n:06d}",
        monitor,
        "eu",
        NOW + n * 1000 if at is None else at,
        ok,
        1.0,
        None if ok else "timeout",
        "" if ok else "timed out",
    )


def test_results_come_out_in_the_order_they_went_in_and_leave_when_acknowledged(
    tmp_path: Path,
) -> None:
    queue = ResultQueue(tmp_path / "q.db", "eu")
    queue.put([result(3), result(1), result(2)], NOW)
    assert [r.id for r in queue.peek(10)] == ["id000003", "id000001", "id000002"]
    assert queue.peek(10)[0].location == "eu"
    queue.ack(["id000003", "id000001"])
    assert [r.id for r in queue.peek(10)] == ["id000002"]
    assert queue.depth() == 1


def test_putting_the_same_result_twice_keeps_one(tmp_path: Path) -> None:
    queue = ResultQueue(tmp_path / "q.db", "eu")
    queue.put([result(1)], NOW)
    queue.put([result(1), result(2)], NOW)
    assert queue.depth() == 2


def test_a_restarted_agent_finds_its_queue(tmp_path: Path) -> None:
    queue = ResultQueue(tmp_path / "q.db", "eu")
    queue.put([result(1, ok=False), result(2)], NOW)
    queue.close()
    again = ResultQueue(tmp_path / "q.db", "eu")
    [first, second] = again.peek(10)
    assert (first.id, first.ok, first.error, second.ok) == ("id000001", False, "timeout", True)
    assert again.depth() == 2


def test_a_full_queue_drops_the_oldest_but_summarises_and_counts_them(tmp_path: Path) -> None:
    queue = ResultQueue(tmp_path / "q.db", "eu", max_results=5)
    queue.put([result(i, ok=i % 2 == 0) for i in range(8)], NOW)
    assert [r.id for r in queue.peek(10)] == [f"id{i:06d}" for i in range(3, 8)]
    [summary] = queue.dropped()
    assert (summary.monitor, summary.count, summary.failures) == ("api", 3, 1)
    assert (summary.first_at, summary.last_at) == (NOW, NOW + 2000)
    assert queue.dropped_total() == 3
    queue.ack_dropped([summary])
    assert queue.dropped() == []
    assert queue.dropped_total() == 3  # the count stays


def test_results_older_than_the_age_limit_are_summarised_and_dropped(tmp_path: Path) -> None:
    queue = ResultQueue(tmp_path / "q.db", "eu", max_age_ms=60_000)
    queue.put([result(1, at=NOW - 120_000), result(2, at=NOW - 30_000, monitor="db")], NOW)
    assert [r.id for r in queue.peek(10)] == ["id000002"]
    assert [(s.monitor, s.count) for s in queue.dropped()] == [("api", 1)]
