"""Issue 12 (8, last clause): after a server restart the stream cannot be resumed and the new server's track IDs
start again at 1. ``roitrack stream`` used to write those IDs as they came, reusing the IDs of earlier objects in
the same output file; now it shifts them past every ID already written, and says so."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from client.results import ResultSink
from client.sources import SourceFrame
from client.stream import StreamClient, StreamConfig
from tests.integration.server_harness import free_port, running_server, scene, scene_jpeg

pytestmark = pytest.mark.timeout(120)


async def test_ids_stay_unique_in_one_output_across_a_server_restart(tmp_path) -> None:
    n = 60
    frames = [
        SourceFrame(
            i,
            0.1 * i,
            scene(i)[0],
            scene_jpeg(i),
            (scene(i)[1], np.full(2, 0.9, np.float32), np.zeros(2, np.int64)),
        )
        for i in range(1, n + 1)
    ]
    port = free_port()
    mot = tmp_path / "out.txt"
    sink = ResultSink(None, str(mot))
    cfg = StreamConfig(
        server=f"127.0.0.1:{port}", stream_id="restarted", send_detections=True, fps=20.0, backoff_s=0.2
    )
    client = StreamClient(cfg, on_result=sink)
    async with running_server(port=port) as srv:
        task = asyncio.get_running_loop().create_task(client.run(frames))
        while len(sink.lines) < 2 * 15:
            await asyncio.sleep(0.02)
        await srv.shutdown(drain_timeout_s=0.5)
    async with running_server(port=port):  # a new process would be the same: no state survives
        stats = await asyncio.wait_for(task, 90)
    sink.close()
    rows = np.loadtxt(mot, delimiter=",")
    assert stats.reconnects >= 1 and stats.id_restarts == 1
    assert any("restart at ID 1" in m and "ID + 2" in m for m in client.notices), client.notices
    # the two objects keep one ID each per server; no ID ever names two objects in the file
    first = rows[rows[:, 0] <= 10]
    last = rows[rows[:, 0] >= n - 10]
    assert set(first[:, 1]) == {1, 2}
    assert set(last[:, 1]) == {3, 4}
    for tid in np.unique(rows[:, 1]):
        xs = rows[rows[:, 1] == tid]
        # the scene's objects are 60 px apart horizontally and 70 px vertically: one ID, one row band
        assert np.ptp(xs[:, 3]) < 1.0, (tid, xs[:, 3])
