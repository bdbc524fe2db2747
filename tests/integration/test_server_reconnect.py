"""The client reconnects with backoff after the network drops and resumes its stream with the same track IDs.

A small TCP proxy sits between client and server; the test cuts every connection mid-stream."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from client.sources import SourceFrame
from client.stream import StreamClient, StreamConfig
from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from tests.integration.server_harness import running_server, scene, scene_jpeg

pytestmark = pytest.mark.timeout(120)


class TcpProxy:
    """Forward 127.0.0.1:<port> to a target; :meth:`cut` drops every open connection (the listener stays)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(Exception):
            w.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [cw, sw]
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))

    def cut(self) -> None:
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_network_drop_reconnects_and_resumes_same_ids() -> None:
    n = 40
    frames = [
        SourceFrame(i, 0.1 * i, scene(i)[0], scene_jpeg(i), (scene(i)[1], *_scores(2)))
        for i in range(1, n + 1)
    ]
    ids_by_frame: dict[int, set[int]] = {}
    async with running_server(resume_window_s=30.0) as srv:
        proxy = TcpProxy(srv.port)
        await proxy.start()

        def on_result(frame: SourceFrame, resp: pb.TrackResponse, latency_ms: float) -> None:
            ids_by_frame[frame.index] = {t.track_id for t in resp.tracks}

        cfg = StreamConfig(
            server=f"127.0.0.1:{proxy.port}", stream_id="flaky", send_detections=True, fps=25.0, backoff_s=0.1
        )
        client = StreamClient(cfg, on_result=on_result)
        task = asyncio.get_running_loop().create_task(client.run(frames))
        while len(ids_by_frame) < 12:
            await asyncio.sleep(0.02)
        proxy.cut()
        stats = await asyncio.wait_for(task, 60)
        await proxy.stop()
    assert stats.reconnects >= 1 and stats.resumed and proxy.connections >= 2
    before = [ids_by_frame[i] for i in sorted(ids_by_frame) if 3 <= i <= 12]
    after = [ids_by_frame[i] for i in sorted(ids_by_frame) if i > 12 + stats.lost + 3]
    assert before and after and len(ids_by_frame) >= n - 10
    assert all(x == before[0] for x in before) and len(before[0]) == 2
    assert all(x == before[0] for x in after), (before[0], after)


def _scores(k: int) -> tuple:  # type: ignore[type-arg]
    import numpy as np

    return np.full(k, 0.9, np.float32), np.zeros(k, np.int64)
