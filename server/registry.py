"""All sessions of a server: open / resume / detach / close, the stream limit, resume window and idle timeout."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from server.session import StreamOptions, StreamSession, session_key
from tracker_core.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    RoitrackError,
)

STREAM_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class IdleTimeoutError(RoitrackError):
    """A live stream sent no frame for longer than the idle timeout (the call ends with DEADLINE_EXCEEDED)."""


class OpenTimeoutError(RoitrackError):
    """A Track call sent no `open` message within ``open_timeout_s`` (the call ends with DEADLINE_EXCEEDED)."""


class StreamClosedError(RoitrackError):
    """The stream was closed by ``CloseStream`` while its call was live (the call ends with ABORTED)."""


class EmbeddingChangedError(ConfigError):
    """A resume asks for another embedding than the stream tracks with (FAILED_PRECONDITION): its tracks hold
    embeddings of the first kind."""


class SessionRegistry:
    """Owns every :class:`StreamSession` by owner and id (``session_key``): a principal sees only its own streams;
    another principal's stream of the same id is simply not there (NOT_FOUND, nothing leaks its existence).

    ``max_streams`` bounds the live calls (``max_streams_per_principal``, when > 0, those of one principal: one
    tenant cannot take every slot); detached sessions kept for resumption are evicted oldest-first - the opening
    principal's own first - when a
    new stream needs the room, and dropped after ``resume_window_s``.
    """

    def __init__(
        self,
        tracker_factory: Callable[[], Any],
        max_streams: int = 64,
        queue_size: int = 2,
        resume_window_s: float = 30.0,
        idle_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_streams_per_principal: int = 0,
    ) -> None:
        self._factory = tracker_factory
        self.max_streams = max_streams
        self.max_streams_per_principal = max_streams_per_principal
        self.queue_size = queue_size
        self.resume_window_s = resume_window_s
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._sessions: dict[str, StreamSession] = {}
        self.on_forget: Callable[[str], None] | None = None  # called with the forgotten session's key

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def live_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.live)

    def sessions(self, owner: str | None = None) -> list[StreamSession]:
        """Every session, or only ``owner``'s."""
        return [s for s in self._sessions.values() if owner is None or s.owner == owner]

    def get(self, stream_id: str, owner: str = "") -> StreamSession | None:
        return self._sessions.get(session_key(owner, stream_id))

    def open(
        self, stream_id: str, resume: bool, options: StreamOptions, owner: str = "", reserved: int = 0
    ) -> tuple[StreamSession, bool]:
        """Attach a call to ``owner``'s stream ``stream_id``. Returns ``(session, resumed)``. ``reserved``: slots
        held by other calls still waiting for their `open` message (they count toward ``max_streams``).

        Raises ``InvalidInputError`` (bad id), ``AlreadyExistsError`` (the id is live on another call),
        ``ResourceExhaustedError`` (``max_streams`` live calls), ``EmbeddingChangedError`` (a resume with another
        embedding than the stream's).
        """
        if not STREAM_ID_RE.match(stream_id):
            raise InvalidInputError(
                f"stream_id must be 1..128 characters of [A-Za-z0-9._:-], got {stream_id[:140]!r}"
            )
        key = session_key(owner, stream_id)
        existing = self._sessions.get(key)
        if existing is not None and existing.live:
            raise AlreadyExistsError(f"stream {stream_id!r} is already live on another call")
        if existing is None or not resume:
            if existing is not None:
                self._forget(key)
            if self.live_count + reserved >= self.max_streams:
                raise ResourceExhaustedError(
                    f"the server already carries its limit of {self.max_streams} live streams"
                )
            cap = self.max_streams_per_principal
            if cap > 0 and sum(1 for x in self._sessions.values() if x.live and x.owner == owner) >= cap:
                raise ResourceExhaustedError(
                    f"this principal already carries its limit of {cap} live streams (max_streams_per_principal)"
                )
            self._evict_detached(keep=self.max_streams - 1, prefer_owner=owner)
            session = StreamSession(stream_id, options, self._factory(), self.queue_size, owner=owner)
            self._sessions[key] = session
            resumed = False
        else:
            if existing.options.embedding != options.embedding:
                raise EmbeddingChangedError(
                    f"stream {stream_id!r} tracks with the {existing.options.embedding} embedding; resume it with "
                    f"the same (asked: {options.embedding}), or open it without resume"
                )
            session, resumed = existing, True
        session.attach(options)
        return session, resumed

    def detach(self, session: StreamSession) -> None:
        """The session's call ended; keep its state for the resume window (or forget it at once if closed)."""
        if self._sessions.get(session.key) is not session:
            return
        if self.resume_window_s <= 0:
            self._forget(session.key)
        else:
            session.detach(self._clock())

    def close(self, stream_id: str, owner: str = "") -> bool:
        """Forget ``owner``'s stream; a live call on it ends with the error. Returns whether it was live."""
        key = session_key(owner, stream_id)
        session = self._sessions.get(key)
        if session is None:
            raise NotFoundError(f"no stream {stream_id!r}")
        was_live = session.live
        if was_live:
            session.end_with(StreamClosedError(f"stream {stream_id!r} was closed by CloseStream"))
        self._forget(key)
        return was_live

    def reap(self) -> list[str]:
        """Drop detached sessions past the resume window; end live calls idle past the idle timeout."""
        now = self._clock()
        gone = []
        for sid, s in list(self._sessions.items()):
            if s.live:
                if now - s.last_seen > self.idle_timeout_s and s.end_error is None:
                    s.end_with(
                        IdleTimeoutError(
                            f"stream {s.stream_id!r} sent no frame for {self.idle_timeout_s:g} s"
                        )
                    )
            elif s.detached_at is not None and now - s.detached_at > self.resume_window_s:
                self._forget(sid)
                gone.append(sid)
        return gone

    def _evict_detached(self, keep: int, prefer_owner: str = "") -> None:
        detached = sorted(
            (s for s in self._sessions.values() if not s.live),
            key=lambda s: (s.owner != prefer_owner, s.detached_at or 0.0),
        )
        while len(self._sessions) > keep and detached:
            self._forget(detached.pop(0).key)

    def _forget(self, key: str) -> None:
        self._sessions.pop(key, None)
        if self.on_forget is not None:
            self.on_forget(key)
