"""A stream session as a durable snapshot: the tracker (``tracker_core.tracking.snapshot``) plus the session's own
fields (owner, clocks, counters, last frame id, who wrote it and when) in the snapshot's ``extra`` header.

What is *not* carried: the per-call options (the resuming ``open`` sends its own, as with an in-memory resume)
and the frame queue (a detached stream has none).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from server.session import StreamSession
from tracker_core.errors import SnapshotError
from tracker_core.tracking import snapshot as tracker_snapshot

SESSION_VERSION = 1
_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_failed")


@dataclass(frozen=True)
class StreamSnapshot:
    """A decoded snapshot, checked but not yet applied to a session."""

    tracker: Any
    stream_id: str
    owner: str
    replica: str
    written_at: float  # time.time() of the writer
    last_timestamp: float | None
    uses_client_clock: bool
    last_frame_id: int
    counters: dict[str, int]


def session_owner(session: StreamSession) -> str:
    """The principal owning the stream (set by authentication when it names one), else ``""``."""
    owner = getattr(session, "owner", "")
    return owner if isinstance(owner, str) else ""


def encode_session(session: StreamSession, replica: str, max_bytes: int) -> bytes:
    """Snapshot of ``session`` (the caller holds ``session.track_lock``)."""
    # A server-clock time is stored as is; ``apply_snapshot`` maps it into the resuming process's clock.
    last_ts = session.last_timestamp
    extra = {
        "session_version": SESSION_VERSION,
        "stream_id": session.stream_id,
        "owner": session_owner(session),
        "replica": replica,
        "written_at": time.time(),
        "last_timestamp": last_ts,
        "uses_client_clock": bool(session.uses_client_clock),
        "last_frame_id": int(getattr(session, "last_frame_id", -1)),
        "counters": {k: int(getattr(session, k)) for k in _COUNTERS},
    }
    return tracker_snapshot.encode(session.tracker, extra=extra, max_bytes=max_bytes)


def decode_session(blob: bytes, stream_id: str, max_bytes: int) -> StreamSnapshot:
    """Decode and check a stored snapshot for ``stream_id``; ``SnapshotError`` when corrupt, foreign or
    incompatible (nothing is applied anywhere)."""
    tracker, extra = tracker_snapshot.decode(blob, max_bytes=max_bytes)
    try:
        if extra["session_version"] != SESSION_VERSION:
            raise SnapshotError(
                f"snapshot session version {extra['session_version']} is not supported (this server reads "
                f"{SESSION_VERSION})"
            )
        if extra["stream_id"] != stream_id:
            raise SnapshotError(f"snapshot belongs to stream {extra['stream_id']!r}, not {stream_id!r}")
        last_ts = extra["last_timestamp"]
        snap = StreamSnapshot(
            tracker=tracker,
            stream_id=str(extra["stream_id"]),
            owner=str(extra["owner"]),
            replica=str(extra["replica"]),
            written_at=float(extra["written_at"]),
            last_timestamp=None if last_ts is None else float(last_ts),
            uses_client_clock=bool(extra["uses_client_clock"]),
            last_frame_id=int(extra["last_frame_id"]),
            counters={k: int(extra["counters"][k]) for k in _COUNTERS},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot is corrupt (session field {exc})") from None
    return snap


def check_owner(snap: StreamSnapshot, session: StreamSession) -> None:
    """A stream owned by a principal may only be resumed by that principal."""
    owner = session_owner(session)
    if snap.owner and snap.owner != owner:
        raise SnapshotError(
            f"stream {snap.stream_id!r} belongs to another principal; it cannot be resumed here"
        )


def apply_snapshot(snap: StreamSnapshot, session: StreamSession) -> None:
    """Put the snapshot's state into ``session`` (a fresh one, or a stale detached one of this process)."""
    with session.track_lock:
        session.tracker = snap.tracker
        session.uses_client_clock = snap.uses_client_clock
        session.last_timestamp = snap.last_timestamp
        if snap.last_timestamp is not None and not snap.uses_client_clock:
            # The writer's server clock (perf_counter) means nothing here: continue from its last time plus the
            # wall time since it was written.
            elapsed = max(0.0, time.time() - snap.written_at)
            session.clock_offset = snap.last_timestamp + elapsed - time.perf_counter()
        session.last_frame_id = snap.last_frame_id
        for k, v in snap.counters.items():
            setattr(session, k, v)
        session.active_tracks = 0
        if snap.owner and not session_owner(session):
            session.owner = snap.owner  # type: ignore[attr-defined]
