"""The render pool: the collector is paused while a render runs and resumed after; pacing."""

from __future__ import annotations

import asyncio
import gc

from uptally import offloop


def _model(size: int) -> list[list[int]]:
    return [[i] for i in range(size)]


async def test_the_collector_is_paused_during_a_render_and_nothing_is_frozen() -> None:
    before = gc.get_freeze_count()
    seen: list[bool] = []

    def render() -> list[list[int]]:
        seen.append(gc.isenabled())
        return _model(100_000)

    await offloop.run(render)
    assert seen == [False]
    assert gc.isenabled()
    # freezing would also take the process's cyclic garbage out of reach (it grew memory)
    assert gc.get_freeze_count() == before


async def test_a_pacer_lets_the_loop_turn_once_its_time_is_up() -> None:
    turned = asyncio.Event()
    asyncio.get_running_loop().call_soon(turned.set)
    pacer = offloop.Pacer(every_s=0.0)
    await pacer.tick()
    assert turned.is_set()
