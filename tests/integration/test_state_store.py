"""Durable stream state with a real redis-server: resume on another replica, single-writer lease, refused
snapshots, and Redis down at start or mid-stream (frames never fail)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from server.app import TrackingServer
from server.session import StreamOptions, StreamSession
from server.state_store import RedisStateStore
from server.stream_state import encode_session
from tests.integration.redis_harness import RedisProcess, redis_server
from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    free_port,
    gt_frame_req,
    open_req,
    running_server,
    scene,
    stub,
)
from tracker_core.tracking import DEFAULT_CONFIG, Tracker

pytestmark = [pytest.mark.timeout(180)]


def metric(srv: TrackingServer, name: str, **labels: str) -> float:
    return srv.metrics.registry.get_sample_value(name, labels) or 0.0


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def moved_req(i: int) -> object:
    """Frame ``i`` whose two objects are 150 px right of the scene's: new objects for the tracker."""
    boxes = scene(i)[1] + np.array([150, 0, 150, 0], np.float32)
    return frame_req(i, boxes)


def ids(resp: object) -> list[int]:
    return sorted(t.track_id for t in resp.tracks)  # type: ignore[attr-defined]


async def test_stream_resumes_on_another_replica_with_the_same_ids() -> None:
    with redis_server() as r:
        async with (
            running_server(state_store=r.url, replica_id="replica-a") as a,
            running_server(state_store=r.url, replica_id="replica-b") as b,
        ):
            async with channel(a) as ch:
                call = Lockstep(stub(ch))
                await call.send(open_req("cam-1"))
                for i in range(1, 4):  # two objects: IDs 1, 2
                    assert ids(await call.step(gt_frame_req(i))) == [1, 2]
                for i in range(4, 8):  # they leave, two others come: IDs 3, 4 once confirmed
                    last = ids(await call.step(moved_req(i)))
                assert last == [3, 4]
                # while the stream is live on A, B refuses it: two clients cannot fork one stream
                async with channel(b) as chb:
                    other = Lockstep(stub(chb))
                    await other.send(open_req("cam-1", resume=True))
                    code, details = await other.status()
                assert code == grpc.StatusCode.ALREADY_EXISTS and "live on replica replica-a" in details
                assert await call.finish() == grpc.StatusCode.OK
            store = r.client()
            await wait_until(lambda: store.get(RedisStateStore.lease_key("cam-1")) is None)
            assert store.get(RedisStateStore.state_key("cam-1")) is not None
            ttl = store.pttl(RedisStateStore.state_key("cam-1"))
            assert 0 < ttl <= 30_000  # TTL = the resume window
            async with channel(b) as chb:
                call = Lockstep(stub(chb))
                await call.send(open_req("cam-1", resume=True))
                assert ids(await call.step(moved_req(8))) == [3, 4]  # a fresh tracker would say [1, 2]
                md = dict(await call.call.initial_metadata())
                assert md.get("roitrack-resumed") == "true"
                assert await call.finish() == grpc.StatusCode.OK
            assert metric(b, "roitrack_stream_resumes_total", origin="other_replica") == 1
            assert metric(b, "roitrack_snapshot_loads_total") == 1
            assert metric(a, "roitrack_snapshot_writes_total", trigger="close") == 1
            assert metric(a, "roitrack_snapshot_latency_seconds_count", op="write") >= 1


async def test_corrupt_foreign_and_other_owners_snapshots_are_refused() -> None:
    with redis_server() as r:
        store = r.client()
        key = RedisStateStore.state_key("cam-2")
        other = StreamSession("cam-9", StreamOptions(), Tracker(DEFAULT_CONFIG))
        owned = StreamSession("cam-2", StreamOptions(), Tracker(DEFAULT_CONFIG))
        owned.owner = "alice"  # type: ignore[attr-defined]
        cases = [
            (b"\x80\x04\x95garbage, or a pickle", "bad magic"),
            (encode_session(other, "x", 1 << 20)[:-1] + b"\x00", "checksum"),
            (encode_session(other, "x", 1 << 20), "belongs to stream 'cam-9'"),
            (encode_session(owned, "x", 1 << 20), "another principal"),
        ]
        async with running_server(state_store=r.url, replica_id="replica-a") as a, channel(a) as ch:
            for blob, why in cases:
                store.set(key, blob)
                call = Lockstep(stub(ch))
                await call.send(open_req("cam-2", resume=True))
                code, details = await call.status()
                assert code == grpc.StatusCode.FAILED_PRECONDITION and why in details, details
                assert store.get(RedisStateStore.lease_key("cam-2")) is None  # nothing held, nothing loaded
                assert a.registry.get("cam-2") is None
            assert metric(a, "roitrack_snapshot_failures_total", op="refused") == len(cases)
            call = Lockstep(stub(ch))  # a fresh open (no resume) replaces the bad snapshot and works
            await call.send(open_req("cam-2"))
            assert ids(await call.step(gt_frame_req(1))) == [1, 2]
            assert await call.finish() == grpc.StatusCode.OK


async def test_redis_down_at_start_degrades_to_memory_then_recovers() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    async with running_server(state_store=url, replica_id="replica-a") as a, channel(a) as ch:
        assert metric(a, "roitrack_state_store_up") == 0
        assert metric(a, "roitrack_state_store_degraded_total") == 1
        assert metric(a, "roitrack_snapshot_failures_total", op="connect") == 1
        call = Lockstep(stub(ch))
        await call.send(open_req("cam-3"))
        for i in range(1, 6):
            resp = await call.step(gt_frame_req(i))
            assert not resp.HasField("error") and ids(resp) == [1, 2]
        r = RedisProcess(port).start()
        try:
            await wait_until(lambda: metric(a, "roitrack_state_store_up") == 1, timeout=15)
            assert await call.finish() == grpc.StatusCode.OK
            await wait_until(lambda: r.client().get(RedisStateStore.state_key("cam-3")) is not None)
        finally:
            r.stop()


async def test_redis_dying_mid_stream_never_fails_frames() -> None:
    with redis_server() as r:
        async with (
            running_server(state_store=r.url, replica_id="replica-a", snapshot_interval_s=0.1) as a,
            channel(a) as ch,
        ):
            call = Lockstep(stub(ch))
            await call.send(open_req("cam-4"))
            for i in range(1, 6):
                await call.step(gt_frame_req(i))
                await asyncio.sleep(0.12)
            await wait_until(lambda: metric(a, "roitrack_snapshot_writes_total", trigger="interval") >= 1)
            r.stop()
            for i in range(6, 16):
                resp = await call.step(gt_frame_req(i))
                assert not resp.HasField("error") and ids(resp) == [1, 2]
                await asyncio.sleep(0.12)
            assert metric(a, "roitrack_state_store_up") == 0
            assert metric(a, "roitrack_state_store_degraded_total") == 1
            assert metric(a, "roitrack_snapshot_failures_total", op="write") >= 1
            assert await call.finish() == grpc.StatusCode.OK


async def test_without_a_store_nothing_changes() -> None:
    async with running_server() as a, channel(a) as ch:
        assert a._state is not None and a._state.keeper is None
        call = Lockstep(stub(ch))
        await call.send(open_req("cam-5"))
        assert ids(await call.step(gt_frame_req(1))) == [1, 2]
        assert await call.finish() == grpc.StatusCode.OK
        assert metric(a, "roitrack_snapshot_writes_total", trigger="close") == 0


async def _run_frames(srv: TrackingServer, stream_id: str, resume: bool, frames: list) -> list[list[int]]:
    async with channel(srv) as ch:
        call = Lockstep(stub(ch))
        await call.send(open_req(stream_id, resume=resume))
        out = [ids(await call.step(f)) for f in frames]
        assert await call.finish() == grpc.StatusCode.OK
    return out


async def test_restarted_replica_resumes_its_own_snapshot() -> None:
    with redis_server() as r:
        async with running_server(state_store=r.url, replica_id="replica-a") as a:
            seen = await _run_frames(
                a, "cam-6", False, [gt_frame_req(1), gt_frame_req(2), *map(moved_req, range(3, 8))]
            )
            assert seen[-1] == [3, 4]
        # a new process with the same replica id (a restarted pod keeps its name)
        async with running_server(state_store=r.url, replica_id="replica-a") as a2:
            assert (await _run_frames(a2, "cam-6", True, [moved_req(8)]))[-1] == [3, 4]
            assert metric(a2, "roitrack_stream_resumes_total", origin="same_replica") == 1


async def test_stale_local_copy_loses_to_a_newer_snapshot_from_another_replica() -> None:
    """A keeps its detached copy for the resume window; when the stream went on at B meanwhile, A resumes B's."""
    with redis_server() as r:
        async with (
            running_server(state_store=r.url, replica_id="replica-a") as a,
            running_server(state_store=r.url, replica_id="replica-b") as b,
        ):
            await _run_frames(a, "cam-7", False, [gt_frame_req(1), gt_frame_req(2)])  # IDs 1, 2 on A
            store = r.client()
            await wait_until(lambda: store.get(RedisStateStore.lease_key("cam-7")) is None)
            # on B the objects move away and two new ones get IDs 3, 4
            assert (await _run_frames(b, "cam-7", True, list(map(moved_req, range(3, 8)))))[-1] == [3, 4]
            await wait_until(lambda: store.get(RedisStateStore.lease_key("cam-7")) is None)
            assert a.registry.get("cam-7") is not None  # A's stale copy (IDs 1, 2) is still held
            assert (await _run_frames(a, "cam-7", True, [moved_req(8)]))[-1] == [3, 4]
            assert metric(a, "roitrack_stream_resumes_total", origin="other_replica") == 1


async def test_tenants_with_the_same_stream_id_have_separate_state_and_leases() -> None:
    """Stream ids are per principal in the store too: bob's `cam` neither blocks nor reads alice's."""
    alice, bob = "alice-secret-1", "bob-secret-22"
    tokens = f"alice={alice}, bob={bob}"

    def md(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    with redis_server() as r:
        async with (
            running_server(state_store=r.url, replica_id="replica-a", tokens=tokens) as a,
            running_server(state_store=r.url, replica_id="replica-b", tokens=tokens) as b,
        ):
            async with channel(a) as ch, channel(b) as chb:
                ca = Lockstep(stub(ch), md(alice))
                await ca.send(open_req("cam"))
                for i in range(1, 4):
                    assert ids(await ca.step(gt_frame_req(i))) == [1, 2]
                for i in range(4, 8):
                    last = ids(await ca.step(moved_req(i)))
                assert last == [3, 4]
                # while alice's `cam` is live on A, bob opens his own `cam` on B: not ALREADY_EXISTS, and fresh
                cb = Lockstep(stub(chb), md(bob))
                await cb.send(open_req("cam", resume=True))
                assert ids(await cb.step(gt_frame_req(1))) == [1, 2]
                assert await cb.finish() == grpc.StatusCode.OK
                assert await ca.finish() == grpc.StatusCode.OK
            store = r.client()
            # each call's end saves its state, then releases its lease, after the call has returned: wait for both
            # releases (bob's save lagged behind alice's release once on a loaded machine)
            await wait_until(
                lambda: (
                    store.get(RedisStateStore.lease_key("alice/cam")) is None
                    and store.get(RedisStateStore.lease_key("bob/cam")) is None
                )
            )
            assert store.get(RedisStateStore.state_key("alice/cam")) is not None
            assert store.get(RedisStateStore.state_key("bob/cam")) is not None
            async with channel(b) as chb:  # alice resumes on B: her IDs, not bob's
                call = Lockstep(stub(chb), md(alice))
                await call.send(open_req("cam", resume=True))
                assert ids(await call.step(moved_req(8))) == [3, 4]
                assert await call.finish() == grpc.StatusCode.OK
