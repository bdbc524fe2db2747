"""Cross-stream batching: frames from all streams are gathered into one model-runner call.

A batch is closed when it holds ``max_batch`` frames or ``max_wait_ms`` has passed since its first frame,
whichever comes first; it then runs on one dedicated model thread while the next batch gathers. With batching
off every frame runs on its own (the baseline of the scaling benchmark).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from server.frames import FrameInput, FrameOutput

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[FrameInput]], list[FrameOutput]]


@dataclass
class _Pending:
    inp: FrameInput
    future: asyncio.Future[FrameOutput]
    t_submit: float


class Batcher:
    """Gathers :class:`FrameInput` from all streams and runs them through ``run_batch`` in batches.

    ``on_batch(size, seconds)`` is called after every batch (metrics). ``expected()``: how many frames could
    come at most (the live streams); a batch that has them all closes without waiting ``max_wait_ms``.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        enabled: bool = True,
        on_batch: Callable[[int, float], None] | None = None,
        expected: Callable[[], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run_batch = run_batch
        self.max_batch = max_batch if enabled else 1
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0 if enabled else 0.0
        self.enabled = enabled
        self._on_batch = on_batch
        self._expected = expected
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-model")
        self._inflight: concurrent.futures.Future[list[FrameOutput]] | None = None
        self.batches = 0
        self.frames = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="roitrack-batcher")

    @property
    def busy(self) -> bool:
        """A batch is still running on the model thread."""
        return self._inflight is not None and not self._inflight.done()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop gathering; wait for the running batch at most ``timeout_s`` (``None``: until it ends). A batch
        still running after that is left to finish on its thread (``busy`` stays true) and its results are
        dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                p = self._queue.get_nowait()
                if not p.future.done():
                    p.future.cancel()
        if self.busy and self._inflight is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait([asyncio.wrap_future(self._inflight)], timeout=timeout_s)
        self._executor.shutdown(wait=not self.busy, cancel_futures=True)

    async def submit(self, inp: FrameInput) -> FrameOutput:
        """Queue one frame and wait for its output."""
        if self._queue is None or self._task is None:
            raise RuntimeError("batcher is not running")
        fut: asyncio.Future[FrameOutput] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(inp, fut, time.perf_counter()))
        return await fut

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if self._expected is not None and len(batch) >= self._expected():
                break  # every stream that could add a frame already has one here: do not wait
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._gather()
            batch = [p for p in batch if not p.future.done()]  # callers that went away
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                self._inflight = self._executor.submit(self._run_batch, [p.inp for p in batch])
                outs = await asyncio.wrap_future(self._inflight)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.future.done():
                        p.future.cancel()
                raise
            except (
                Exception
            ) as exc:  # a bug in the runner: every frame of the batch gets it, the loop goes on
                log.exception("model runner failed on a batch of %d frames", len(batch))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            dt = time.perf_counter() - t0
            self.batches += 1
            self.frames += len(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch), dt)
            for p, out in zip(batch, outs, strict=True):
                if not p.future.done():
                    out.t_batch_start, out.run_s = t0, dt
                    p.future.set_result(out)
