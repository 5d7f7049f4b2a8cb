"""The render pool: what a render keeps is frozen, not walked by the collector on the loop."""

from __future__ import annotations

import asyncio
import gc

from uptally import offloop


def _model(size: int) -> list[list[int]]:
    return [[i] for i in range(size)]


async def test_what_a_render_keeps_is_frozen_not_collected_on_the_loop() -> None:
    before = gc.get_freeze_count()
    kept = await offloop.run(_model, 100_000)
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(kept)  # a young collection would walk them
    assert gc.get_count()[0] < 1_000


async def test_a_pacer_lets_the_loop_turn_once_its_time_is_up() -> None:
    turned = asyncio.Event()
    asyncio.get_running_loop().call_soon(turned.set)
    pacer = offloop.Pacer(every_s=0.0)
    await pacer.tick()
    assert turned.is_set()
