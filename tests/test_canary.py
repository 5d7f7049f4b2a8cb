"""The canary verdict (pure): the majority rule, and default canaries that never answered."""

from __future__ import annotations

import pytest

from uptally.probe.canary import CanaryResult, NetworkJudge, majority_answers

A, B, C = "tcp://10.0.0.1:443", "tcp://10.0.0.2:443", "tcp://10.0.0.3:443"


def round_of(**answers: bool) -> list[CanaryResult]:
    targets = {"a": A, "b": B, "c": C}
    return [
        CanaryResult(targets[name], ok, None if ok else "connect_refused")
        for name, ok in answers.items()
    ]


@pytest.mark.parametrize(
    ("answering", "total", "works"),
    [(0, 0, True), (1, 1, True), (0, 1, False), (1, 2, False), (2, 2, True), (1, 3, False),
     (2, 3, True), (2, 4, False), (3, 4, True)],
)  # fmt: skip
def test_the_network_works_when_more_than_half_of_the_canaries_answer(
    answering: int, total: int, works: bool
) -> None:
    results = [CanaryResult(f"tcp://10.0.0.{i}:53", i < answering) for i in range(total)]
    assert majority_answers(results) is works


def test_configured_canaries_flag_degraded_while_most_fail_and_say_so_on_each_change() -> None:
    judge = NetworkJudge([A, B, C], defaults=False)
    assert judge.judge(round_of(a=True, b=False, c=True)) == judge.judge(round_of(a=True, b=True))
    assert not judge.degraded  # two of three: the network works, one canary is down
    going = judge.judge(round_of(a=False, b=False, c=True))
    assert going.degraded
    assert going.loud
    assert going.news is not None
    assert "only 1 of 3 canaries answer" in going.news
    assert judge.judge(round_of(a=False, b=False, c=False)).news is None  # said already
    back = judge.judge(round_of(a=True, b=True, c=False))
    assert not back.degraded
    assert back.news == "most canaries answer again: this probe's failures count again"


def test_configured_canaries_that_never_answer_still_count() -> None:
    judge = NetworkJudge([A, B], defaults=False)
    assert judge.judge(round_of(a=False, b=False)).degraded


def test_default_canaries_that_never_answered_flag_nothing_and_say_so_once() -> None:
    judge = NetworkJudge([A, B, C], defaults=True)
    verdicts = [judge.judge(round_of(a=False, b=False, c=False)) for _ in range(50)]
    assert not any(v.degraded for v in verdicts)
    said = [v for v in verdicts if v.news]
    assert len(said) == 1
    assert said[0].loud
    assert "none of the default canaries" in (said[0].news or "")


def test_only_default_canaries_that_answered_here_take_part_in_the_majority() -> None:
    judge = NetworkJudge([A, B, C], defaults=True)
    proven = judge.judge(round_of(a=True, b=False, c=False))  # B and C are blocked here
    assert not proven.degraded
    assert proven.news is not None
    assert A in proven.news
    assert not judge.judge(round_of(a=True, b=False, c=False)).degraded
    assert judge.judge(round_of(a=False, b=False, c=False)).degraded  # A was reachable: now not
    judge.judge(round_of(a=True, b=True, c=False))  # B answers too: two voters
    assert judge.judge(round_of(a=True, b=False, c=False)).degraded  # one of two is no majority
