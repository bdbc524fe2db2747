"""When stream state goes to and comes from the state store, off the frame path, degrading to memory.

:class:`StateKeeper` is what the servicer and the server call; it owns one thread for every Redis call and every
snapshot encode/decode, so neither the event loop nor the tracking pool ever waits on Redis.

- ``open``: take the stream's lease (``AlreadyExistsError`` when another replica holds it live); on a resume,
  load the stored snapshot and apply it when it is newer than what this process holds (a fresh session, or a
  detached one that another replica has since continued). A corrupt / foreign / incompatible snapshot, or one
  owned by another principal, is refused with ``SnapshotError`` (FAILED_PRECONDITION) and nothing is applied.
- while live: a snapshot every ``snapshot_interval_s`` (policy ``interval``), at most one in flight per stream;
  leases renewed every third of ``state_lease_s``.
- call end (client close, disconnect, drain): a last snapshot (policies ``interval`` and ``on-close``), then the
  lease is released.

Redis down at start or mid-stream: a warning, ``roitrack_state_store_up 0`` and
``roitrack_state_store_degraded_total``; streams go on with in-memory state (no lease, no snapshots) and a probe
every ``probe_s`` brings the store back. Frames never fail because of Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from server.metrics import ServerMetrics
from server.session import StreamSession
from server.state_store import StoreDownError
from server.stream_state import apply_snapshot, check_owner, decode_session, encode_session
from tracker_core.errors import AlreadyExistsError, SnapshotError

log = logging.getLogger(__name__)

POLICIES = ("off", "on-close", "interval")
T = TypeVar("T")


class StateKeeper:
    def __init__(
        self,
        store: Any,
        replica: str,
        metrics: ServerMetrics,
        policy: str = "interval",
        interval_s: float = 2.0,
        resume_window_s: float = 30.0,
        lease_s: float = 10.0,
        max_bytes: int = 64 * 1024 * 1024,
        probe_s: float = 2.0,
    ) -> None:
        self.store = store
        self.replica = replica
        self.metrics = metrics
        self.policy = policy
        self.interval_s = interval_s
        self.ttl_s = max(resume_window_s, 1.0)
        self.lease_s = lease_s
        self.max_bytes = max_bytes
        self.probe_s = probe_s
        self.up = True
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-state")
        self._tasks: set[asyncio.Task[None]] = set()
        self._saving: set[str] = set()
        self._last_probe = 0.0
        self._last_renew = 0.0
        self._live_ids: Callable[[], list[str]] = list
        metrics.state_store_up.set(1)

    # ---- plumbing ----
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _down(self, exc: BaseException, op: str) -> None:
        self.metrics.snapshot_failures.labels(op).inc()
        if self.up:
            self.up = False
            self._last_probe = time.monotonic()
            self.metrics.state_store_up.set(0)
            self.metrics.state_store_degraded.inc()
            log.warning("state store unavailable (%s); streams continue with in-memory state only", exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- life cycle ----
    async def start(self) -> None:
        try:
            await self._run(self.store.ping)
            log.info(
                "state store %s reachable (replica %s, policy %s)",
                self.store.address,
                self.replica,
                self.policy,
            )
        except StoreDownError as exc:
            self._down(exc, "connect")

    async def stop(self) -> None:
        """Wait for pending writes (shutdown: after the drain), then close."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._run(self.store.close)
        self._pool.shutdown(wait=True)

    # ---- open ----
    async def open(self, session: StreamSession, resume: bool, resumed_locally: bool) -> str | None:
        """Lease and (on resume) restore. Returns the origin of a restore from the store (``"same_replica"`` /
        ``"other_replica"``), else ``None``. Raises ``AlreadyExistsError`` / ``SnapshotError``."""
        session.state_closed = False  # this call's end is still to be saved
        if not self.up:
            return None
        sid = session.stream_id
        key = session.key  # owner/stream_id: stream ids are per principal, in the store too
        try:
            if not await self._run(self.store.acquire, key, self.replica, self.lease_s):
                holder = await self._run(self.store.holder, key)
                raise AlreadyExistsError(
                    f"stream {sid!r} is live on replica {holder or '?'}; reconnect once it ends there"
                )
            if not resume:
                await self._run(self.store.delete, key)
                return None
            t0 = time.perf_counter()
            blob = await self._run(self.store.load, key)
        except StoreDownError as exc:
            self._down(exc, "load")
            return None
        if blob is None:
            return None
        try:
            snap = await self._run(decode_session, blob, sid, self.max_bytes)
            check_owner(snap, session)
        except SnapshotError:
            self.metrics.snapshot_failures.labels("refused").inc()
            with contextlib.suppress(StoreDownError):
                await self._run(self.store.release, key, self.replica)
            raise
        self.metrics.snapshot_latency.labels("load").observe(time.perf_counter() - t0)
        self.metrics.snapshot_loads.inc()
        if resumed_locally and snap.replica == self.replica:
            return None  # our own snapshot: the in-memory state is at least as new
        apply_snapshot(snap, session)
        return "same_replica" if snap.replica == self.replica else "other_replica"

    # ---- while live ----
    def after_frame(self, session: StreamSession) -> None:
        """Called after each answered frame: start an interval snapshot when one is due."""
        if self.policy != "interval" or not self.up or session.key in self._saving:
            return
        now = time.monotonic()
        last = session.snapshot_at
        if last is None:
            session.snapshot_at = now
            return
        if now - last >= self.interval_s:
            session.snapshot_at = now
            self._saving.add(session.key)
            self._spawn(self._save(session, "interval"))

    async def _save(self, session: StreamSession, trigger: str) -> None:
        try:
            t0 = time.perf_counter()
            blob = await self._run(self._encode_locked, session)
            await self._run(self.store.save, session.key, blob, self.ttl_s)
            self.metrics.snapshot_latency.labels("write").observe(time.perf_counter() - t0)
            self.metrics.snapshot_writes.labels(trigger).inc()
            self.metrics.snapshot_bytes.observe(len(blob))
        except StoreDownError as exc:
            self._down(exc, "write")
        except SnapshotError as exc:
            self.metrics.snapshot_failures.labels("write").inc()
            log.warning("stream %s: snapshot not written: %s", session.stream_id, exc)
        finally:
            self._saving.discard(session.key)

    def _encode_locked(self, session: StreamSession) -> bytes:
        with session.track_lock:
            return encode_session(session, self.replica, self.max_bytes)

    async def tick(self) -> None:
        """Housekeeping: renew live leases; probe a store that was down."""
        now = time.monotonic()
        if not self.up:
            if now - self._last_probe < self.probe_s:
                return
            self._last_probe = now
            try:
                await self._run(self.store.ping)
            except StoreDownError:
                return
            self.up = True
            self.metrics.state_store_up.set(1)
            self._last_renew = 0.0
            log.warning("state store %s is back; snapshots and leases resume", self.store.address)
        if now - self._last_renew < self.lease_s / 3:
            return
        self._last_renew = now
        ids = self._live_ids()
        try:
            held = await self._run(self.store.renew, ids, self.replica, self.lease_s)
        except StoreDownError as exc:
            self._down(exc, "lease")
            return
        for sid, ok in zip(ids, held, strict=True):
            if not ok:
                self.metrics.snapshot_failures.labels("lease").inc()
                log.warning("stream %s: its lease is held by another replica", sid)

    def track_live(self, live_ids: Callable[[], list[str]]) -> None:
        """Where ``tick`` gets the keys (``session.key``) of the live streams whose leases it renews."""
        self._live_ids = live_ids

    # ---- call end ----
    async def close(self, session: StreamSession, trigger: str) -> None:
        """The call ended: last snapshot (unless policy ``off``), then release the lease. Idempotent per call."""
        if session.state_closed:
            return
        session.state_closed = True
        if not self.up:
            return
        while session.key in self._saving:  # let an interval write finish first (ordering)
            await asyncio.sleep(0.005)
        if self.policy != "off":
            self._saving.add(session.key)
            await self._save(session, trigger)
        if self.up:
            try:
                await self._run(self.store.release, session.key, self.replica)
            except StoreDownError as exc:
                self._down(exc, "lease")

    def close_soon(self, session: StreamSession, trigger: str) -> None:
        self._spawn(self.close(session, trigger))

    async def forget(self, key: str, session: StreamSession | None) -> None:
        """``CloseStream`` of the stream ``key`` (``session_key(owner, stream_id)``): gone for good, here and in
        the store (no call-end snapshot either)."""
        if session is not None:
            session.state_closed = True
        if not self.up:
            return
        try:
            await self._run(self.store.delete, key)
            await self._run(self.store.release, key, self.replica)
        except StoreDownError as exc:
            self._down(exc, "write")
