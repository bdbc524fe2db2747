"""Durable stream state in Redis: one snapshot key per stream (TTL = resume window) and a single-writer lease.

Keys (``PREFIX`` = ``roitrack:v1``):

- ``PREFIX:state:<stream id>``: the stream's latest snapshot (bytes, see ``server/stream_state.py``), written with
  ``PX`` = the resume window, so Redis forgets a stream exactly when no replica could resume it any more;
- ``PREFIX:lease:<stream id>``: the replica id holding the stream live, ``PX`` = the lease time, renewed while
  the stream is live and deleted (compare-and-delete) when its call ends. Another replica refuses to open the
  stream while the lease is held, so two clients cannot fork one stream; a crashed replica's lease expires.

Every call is synchronous (redis-py) with short socket timeouts and runs on the state thread, never on the event
loop or the frame path. Any Redis failure raises :class:`StoreDownError`; the caller degrades to in-memory state.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from tracker_core.errors import ConfigError

PREFIX = "roitrack:v1"
_URL_RE = re.compile(
    r"^redis://(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})(?:/(?P<db>\d{1,2}))?$"
)

# Take or refresh the lease when it is free or already ours.
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Delete the lease only when it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class StoreDownError(Exception):
    """Redis did not answer (refused, timed out, or errored). Internal: callers degrade to in-memory state."""


@dataclass(frozen=True)
class StoreAddress:
    host: str
    port: int
    db: int

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_store_url(url: str) -> StoreAddress:
    """``redis://HOST:PORT[/DB]`` -> address; anything else is a ``ConfigError`` naming the setting."""
    m = _URL_RE.match(url.strip())
    if m is None:
        raise ConfigError(f"state_store must look like redis://HOST:PORT/DB, got {url!r}")
    port, db = int(m["port"]), int(m["db"] or 0)
    if not 1 <= port <= 65535:
        raise ConfigError(f"state_store port must be 1..65535, got {port}")
    if db > 15:
        raise ConfigError(f"state_store database must be 0..15, got {db}")
    return StoreAddress(m["host"].strip("[]"), port, db)


class RedisStateStore:
    """Snapshot and lease operations on one Redis database."""

    def __init__(self, address: StoreAddress, timeout_s: float = 0.5, password: str | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.address = address
        self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._r = redis.Redis(
            host=address.host,
            port=address.port,
            db=address.db,
            password=password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # fail fast: the caller degrades to memory; never stall a stream
            health_check_interval=0,
        )
        self._acquire = self._r.register_script(_ACQUIRE)
        self._release = self._r.register_script(_RELEASE)

    @staticmethod
    def state_key(stream_id: str) -> str:
        return f"{PREFIX}:state:{stream_id}"

    @staticmethod
    def lease_key(stream_id: str) -> str:
        return f"{PREFIX}:lease:{stream_id}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._redis_errors as exc:
            raise StoreDownError(f"{self.address}: {type(exc).__name__}: {exc}") from None

    def ping(self) -> None:
        self._call(self._r.ping)

    def save(self, stream_id: str, blob: bytes, ttl_s: float) -> None:
        self._call(self._r.set, self.state_key(stream_id), blob, px=max(1, int(ttl_s * 1000)))

    def load(self, stream_id: str) -> bytes | None:
        value = self._call(self._r.get, self.state_key(stream_id))
        return None if value is None else bytes(value)

    def delete(self, stream_id: str) -> None:
        self._call(self._r.delete, self.state_key(stream_id))

    def acquire(self, stream_id: str, replica: str, ttl_s: float) -> bool:
        """Take (or refresh) the stream's lease for ``replica``; False when another replica holds it."""
        px = max(1, int(ttl_s * 1000))
        return bool(self._call(self._acquire, keys=[self.lease_key(stream_id)], args=[replica, px]))

    def renew(self, stream_ids: list[str], replica: str, ttl_s: float) -> list[bool]:
        """Refresh many leases in one round trip; False for those another replica holds."""
        if not stream_ids:
            return []
        px = max(1, int(ttl_s * 1000))
        pipe = self._r.pipeline(transaction=False)
        for sid in stream_ids:
            self._acquire(keys=[self.lease_key(sid)], args=[replica, px], client=pipe)
        return [bool(x) for x in self._call(pipe.execute)]

    def holder(self, stream_id: str) -> str | None:
        value = self._call(self._r.get, self.lease_key(stream_id))
        return None if value is None else bytes(value).decode(errors="replace")

    def release(self, stream_id: str, replica: str) -> None:
        self._call(self._release, keys=[self.lease_key(stream_id)], args=[replica])

    def close(self) -> None:
        with contextlib.suppress(*self._redis_errors):
            self._r.close()
