"""Per-stream queue (latest frame wins) and the session registry, without any network."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.frames import DecodedImage, FrameInput
from server.registry import IdleTimeoutError, SessionRegistry, StreamClosedError
from server.session import PendingFrame, StreamOptions, StreamSession
from tracker_core.errors import AlreadyExistsError, InvalidInputError, NotFoundError, ResourceExhaustedError

IMG = FrameInput(DecodedImage(np.zeros((8, 8, 3), np.uint8)))


def pf(i: int) -> PendingFrame:
    return PendingFrame(i, 0.1 * i, IMG, 0.0)


async def test_queue_drops_oldest_and_counts() -> None:
    s = StreamSession("s", StreamOptions(), tracker=object(), queue_size=2)
    s.attach(StreamOptions())
    assert [s.push(pf(i)) for i in range(1, 6)] == [0, 0, 1, 1, 1]
    assert s.queued == 2 and s.frames_dropped == 3 and s.frames_received == 5
    assert (await s.next_frame()).frame_id == 4  # type: ignore[union-attr]
    assert s.take_dropped() == 3 and s.take_dropped() == 0
    s.end_input()
    assert (await s.next_frame()).frame_id == 5  # type: ignore[union-attr]
    assert await s.next_frame() is None  # input ended and queue empty


async def test_next_frame_waits_and_end_with_stops() -> None:
    s = StreamSession("s", StreamOptions(), tracker=object(), queue_size=1)
    s.attach(StreamOptions())
    waiter = asyncio.get_running_loop().create_task(s.next_frame())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    s.push(pf(7))
    assert (await waiter).frame_id == 7  # type: ignore[union-attr]
    s.push(pf(8))
    s.end_with(StreamClosedError("closed"))
    assert await s.next_frame() is None and s.queued == 0


def test_options_bounds() -> None:
    with pytest.raises(InvalidInputError, match="conf_threshold"):
        StreamOptions(conf_threshold=0.0)
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        StreamOptions(iou_threshold=0.99)
    with pytest.raises(InvalidInputError, match="class ids"):
        StreamOptions(classes=(-1,))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_registry_life_cycle() -> None:
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    clock = Clock()
    reg = SessionRegistry(factory, max_streams=2, resume_window_s=10.0, idle_timeout_s=5.0, clock=clock)
    forgotten: list[str] = []
    reg.on_forget = forgotten.append
    a, resumed = reg.open("a", False, StreamOptions())
    assert not resumed and a.live and a.tracker is made[0]
    with pytest.raises(AlreadyExistsError):
        reg.open("a", True, StreamOptions())
    with pytest.raises(InvalidInputError, match="stream_id"):
        reg.open("bad id", False, StreamOptions())
    b, _ = reg.open("b", False, StreamOptions())
    with pytest.raises(ResourceExhaustedError, match="limit of 2"):
        reg.open("c", False, StreamOptions())
    # a call ends: its state is kept, and resuming gets the same tracker
    reg.detach(a)
    assert not a.live and reg.live_count == 1
    again, resumed = reg.open("a", True, StreamOptions(return_lost=True))
    assert resumed and again is a and again.tracker is made[0] and again.options.return_lost
    # opening without resume starts over
    reg.detach(a)
    fresh, resumed = reg.open("a", False, StreamOptions())
    assert not resumed and fresh is not a and fresh.tracker is made[-1]
    # resume window: detached state expires
    reg.detach(fresh)
    clock.t += 11
    assert reg.reap() == ["a"] and reg.get("a") is None and "a" in forgotten
    # idle live stream is ended with IdleTimeoutError
    b.last_seen = -1e9
    reg.reap()
    assert isinstance(b.end_error, IdleTimeoutError)
    # close: live -> ended with StreamClosedError; unknown -> NotFoundError
    c, _ = reg.open("c", False, StreamOptions())
    assert reg.close("c") is True and isinstance(c.end_error, StreamClosedError) and reg.get("c") is None
    with pytest.raises(NotFoundError):
        reg.close("c")


def test_detached_sessions_are_evicted_for_new_streams() -> None:
    reg = SessionRegistry(object, max_streams=2, resume_window_s=60.0)
    a, _ = reg.open("a", False, StreamOptions())
    b, _ = reg.open("b", False, StreamOptions())
    reg.detach(a)
    reg.detach(b)
    reg.open("c", False, StreamOptions())
    reg.open("d", False, StreamOptions())
    assert sorted(s.stream_id for s in reg.sessions()) == ["c", "d"]


async def test_stream_ids_are_per_owner() -> None:
    reg = SessionRegistry(object, max_streams=4, resume_window_s=60.0)
    forgotten: list[str] = []
    reg.on_forget = forgotten.append
    a, _ = reg.open("cam", False, StreamOptions(), owner="alice")
    b, resumed = reg.open("cam", True, StreamOptions(), owner="bob")  # not alice's: a fresh stream of bob's
    assert not resumed and b is not a and (a.owner, b.owner) == ("alice", "bob")
    assert (a.key, b.key) == ("alice/cam", "bob/cam")
    assert reg.sessions("alice") == [a] and reg.sessions("bob") == [b] and reg.sessions("eve") == []
    assert reg.get("cam", "alice") is a and reg.get("cam") is None
    with pytest.raises(NotFoundError):
        reg.close("cam", owner="eve")
    reg.detach(a)
    assert reg.close("cam", owner="bob") is True and forgotten == ["bob/cam"]
    again, resumed = reg.open("cam", True, StreamOptions(), owner="alice")
    assert resumed and again is a


def test_one_principal_cannot_take_every_slot_nor_evict_others_first() -> None:
    reg = SessionRegistry(object, max_streams=3, resume_window_s=60.0, max_streams_per_principal=2)
    reg.open("a1", False, StreamOptions(), owner="alice")
    reg.open("a2", False, StreamOptions(), owner="alice")
    with pytest.raises(ResourceExhaustedError, match=r"this principal .* limit of 2"):
        reg.open("a3", False, StreamOptions(), owner="alice")
    b1, _ = reg.open("b1", False, StreamOptions(), owner="bob")
    # a full server: bob's detached stream is kept while alice's own detached one makes the room
    reg.detach(b1)
    reg.detach(reg.get("a1", "alice"))  # type: ignore[arg-type]
    reg.open("a3", False, StreamOptions(), owner="alice")
    assert reg.get("b1", "bob") is b1 and reg.get("a1", "alice") is None
