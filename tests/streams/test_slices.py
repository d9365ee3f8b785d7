"""A checkpoint's work on the event loop leaves evaluation most of the loop, except while
something waits for the checkpoint (a rebalance), when it goes as fast as it can.

Measured as shares of wall time between two coroutines on one loop, with wide margins: the
work rests :data:`streams.app.REST_S` (three slices) after each slice, so evaluation gets
~3/4 of the loop; without the rest it got one step between two slices, ~1/6."""

from __future__ import annotations

import asyncio
import time

from streams.app import REST_S, SLICE_S, _Slices

STEP_S = 0.001


def _busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def _evaluation_share(hurry: bool, work_s: float = 12 * SLICE_S) -> tuple[float, float]:
    """(share of the wall time another task spent in its 1 ms steps while ``work_s`` of sliced
    work ran, the work's wall time)."""
    other = 0.0
    done = False

    async def evaluation() -> None:
        nonlocal other
        while not done:
            t0 = time.perf_counter()
            _busy(STEP_S)
            other += time.perf_counter() - t0
            await asyncio.sleep(0)

    task = asyncio.create_task(evaluation())
    await asyncio.sleep(0)
    started = time.perf_counter()
    slices = _Slices(lambda: hurry)
    for _ in range(round(work_s / STEP_S)):
        _busy(STEP_S)
        await slices.next()
    elapsed = time.perf_counter() - started
    done = True
    await task
    return other / elapsed, elapsed


async def test_a_checkpoint_leaves_evaluation_most_of_the_loop() -> None:
    share, elapsed = await _evaluation_share(hurry=False)
    assert share > 0.55, f"evaluation had {share:.0%} of the loop while a checkpoint ran"
    # the work itself rested: it took about four times its own time
    assert elapsed > 2.5 * 12 * SLICE_S


async def test_a_checkpoint_someone_waits_for_does_not_rest() -> None:
    share, elapsed = await _evaluation_share(hurry=True)
    assert share < 0.4, f"evaluation had {share:.0%} of the loop while a hurried checkpoint ran"
    # faster than the work and its rests could be (at least 11 of them): it did not rest. (Not
    # a tighter bound: on a loaded machine the busy work itself takes longer than it says.)
    assert elapsed < 12 * SLICE_S + 11 * REST_S
