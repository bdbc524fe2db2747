"""Cross-stream batching: frames submitted together share a batch; batching off runs them one by one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from server.batcher import Batcher
from server.frames import DecodedImage, FrameInput, FrameOutput


def inp(k: int) -> FrameInput:
    return FrameInput(DecodedImage(np.full((4, 4, 3), k, np.uint8)))


class Runner:
    """Records batch sizes; echoes each frame's pixel value as its score (so results can be matched)."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s
        self.fail_on = fail_on

    def __call__(self, inputs: Sequence[FrameInput]) -> list[FrameOutput]:
        self.threads.add(threading.current_thread().name)
        values = [int(i.image.rgb[0, 0, 0]) for i in inputs]  # type: ignore[union-attr]
        if self.fail_on in values:
            raise RuntimeError("runner bug")
        self.sizes.append(len(inputs))
        time.sleep(self.delay_s)
        return [FrameOutput(scores=np.array([v], np.float32), batch_size=len(inputs)) for v in values]


async def test_concurrent_submits_share_batches_and_results_match() -> None:
    runner = Runner(delay_s=0.01)
    seen: list[int] = []
    b = Batcher(runner, max_batch=4, max_wait_ms=50, on_batch=lambda n, dt: seen.append(n))
    b.start()
    try:
        outs = await asyncio.gather(*(b.submit(inp(k)) for k in range(10)))
    finally:
        await b.stop()
    assert [int(o.scores[0]) for o in outs] == list(range(10))
    assert runner.sizes == [4, 4, 2] and seen == runner.sizes
    assert all(o.run_s > 0 for o in outs)
    assert runner.threads == {"roitrack-model_0"}  # the model runs on its one dedicated thread


async def test_max_wait_closes_a_partial_batch() -> None:
    runner = Runner()
    b = Batcher(runner, max_batch=8, max_wait_ms=20)
    b.start()
    try:
        t0 = time.perf_counter()
        out = await b.submit(inp(1))
        waited = time.perf_counter() - t0
    finally:
        await b.stop()
    # it waited for stragglers (>= the 20 ms, less timer granularity) and then closed: 1 s is 50x the wait, slack
    # for a loaded machine
    assert out.batch_size == 1 and 0.015 <= waited < 1.0


async def test_batching_off_runs_frames_one_by_one() -> None:
    runner = Runner()
    b = Batcher(runner, max_batch=8, max_wait_ms=50, enabled=False)
    b.start()
    try:
        await asyncio.gather(*(b.submit(inp(k)) for k in range(5)))
    finally:
        await b.stop()
    assert runner.sizes == [1, 1, 1, 1, 1]


async def test_runner_failure_fails_its_batch_only() -> None:
    runner = Runner(fail_on=3)
    b = Batcher(runner, max_batch=2, max_wait_ms=30)
    b.start()
    try:
        results = await asyncio.gather(*(b.submit(inp(k)) for k in (2, 3, 4, 5)), return_exceptions=True)
        later = await b.submit(inp(9))
    finally:
        await b.stop()
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert [int(r.scores[0]) for r in results[2:]] == [4, 5]  # type: ignore[union-attr]
    assert int(later.scores[0]) == 9


async def test_submit_requires_start() -> None:
    b = Batcher(Runner())
    with pytest.raises(RuntimeError, match="not running"):
        await b.submit(inp(0))


async def test_batch_closes_early_when_every_stream_is_in() -> None:
    runner = Runner()
    b = Batcher(runner, max_batch=8, max_wait_ms=5000, expected=lambda: 2)
    b.start()
    try:
        t0 = time.perf_counter()
        outs = await asyncio.gather(b.submit(inp(1)), b.submit(inp(2)))
        waited = time.perf_counter() - t0
    finally:
        await b.stop()
    # closed as soon as both were in, not at the 5 s deadline (half of it leaves room for a loaded machine)
    assert [o.batch_size for o in outs] == [2, 2] and waited < 2.5
