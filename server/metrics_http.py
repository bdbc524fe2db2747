"""The metrics port: an HTTP/1.1 server that answers ``GET /metrics`` (Prometheus text format) and nothing else.

One event loop on one thread serves every connection, so an idle or slow connection costs a socket and a few
hundred bytes, never a thread. Slow and idle clients cannot lock scrapes out:

- a request head must arrive complete within :data:`HEADER_TIMEOUT_S` of the connection opening (or of the
  previous answer on a kept-alive connection), else the connection is closed;
- at most :data:`MAX_CONNECTIONS` connections are held; a new one past that closes the connection that has
  waited longest without a complete request, so a client that sends its request at once (Prometheus) always
  gets in, however many idle or trickling connections someone holds open;
- a request head larger than :data:`MAX_HEAD_BYTES`, or an answer the client does not read within
  :data:`WRITE_TIMEOUT_S`, closes the connection.

Before (issue 19, item 9) each connection took one of 32 thread slots before any byte was read: 32 idle
connections re-opened every 4 s made every scrape fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HEADER_TIMEOUT_S = 5.0
"""A connection must send a complete request head within this long (a scrape takes milliseconds)."""
MAX_CONNECTIONS = 256
"""Connections held at once; past it the longest-waiting one without a complete request is closed."""
MAX_HEAD_BYTES = 16 * 1024
"""Request line + headers at most (Prometheus sends a few hundred bytes)."""
WRITE_TIMEOUT_S = 10.0
"""An answer the client does not take within this long closes the connection."""


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    waiting_since: float = field(default_factory=time.monotonic)
    busy: bool = False  # a complete request is being answered: never evicted


class MetricsHTTPServer:
    """Serves ``registry`` on ``host:port`` (``port`` 0 picks a free one) from a daemon thread with its own loop.

    The socket is bound in the constructor (an ``OSError`` there: the port is taken); :meth:`start` serves,
    :meth:`stop` closes every connection and ends the thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        token: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._registry = registry
        self._expected = f"Bearer {token}".encode() if token else None
        self._max = int(max_connections)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roitrack-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def connections(self) -> int:
        """Connections held now."""
        return len(self._conns)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10.0)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10.0)
        with contextlib.suppress(OSError):
            self._sock.close()

    # ---- the loop's thread ----
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve, sock=self._sock, limit=MAX_HEAD_BYTES)
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for c in list(self._conns):
                c.writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def _make_room(self) -> None:
        """At the cap: close the connection that has waited longest without a complete request."""
        while len(self._conns) >= self._max:
            idle = [c for c in self._conns if not c.busy]
            if not idle:
                return
            victim = min(idle, key=lambda c: c.waiting_since)
            self._conns.discard(victim)
            victim.writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._make_room()
        if len(self._conns) >= self._max:  # every held connection is being answered: refuse this one
            writer.transport.abort()
            return
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            while True:
                conn.waiting_since, conn.busy = time.monotonic(), False
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
                except (
                    TimeoutError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    ConnectionError,
                ):
                    return
                conn.busy = True
                keep_alive = await self._answer(head, writer)
                if not keep_alive:
                    return
        except (ConnectionError, TimeoutError, OSError):
            return
        finally:
            self._conns.discard(conn)
            writer.close()  # flushes what is buffered (nothing after a drained answer), then closes

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection stays open for another."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send(writer, 400, b"bad request\n", "text/plain", head_only=False, keep_alive=False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers or "transfer-encoding" in headers:  # no request bodies here
            await self._send(writer, 400, b"no request body expected\n", "text/plain", False, False)
            return False
        conn_hdr = headers.get("connection", "").lower()
        keep_alive = (version == "HTTP/1.1" and conn_hdr != "close") or conn_hdr == "keep-alive"
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, b"only GET /metrics\n", "text/plain", head_only, keep_alive)
        elif target.split("?", 1)[0] != "/metrics":
            await self._send(
                writer,
                404,
                b"not found: this port serves only /metrics\n",
                "text/plain",
                head_only,
                keep_alive,
            )
        elif self._expected is not None and not hmac.compare_digest(
            headers.get("authorization", "").encode("utf-8", "replace"), self._expected
        ):
            await self._send(
                writer,
                401,
                b"unauthorized: send `Authorization: Bearer <metrics_token>`\n",
                "text/plain",
                head_only,
                keep_alive,
                extra=(("WWW-Authenticate", 'Bearer realm="roitrack-metrics"'),),
            )
        else:
            body = generate_latest(self._registry)
            await self._send(writer, 200, body, CONTENT_TYPE_LATEST, head_only, keep_alive)
        return keep_alive

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        code: int,
        body: bytes,
        ctype: str,
        head_only: bool,
        keep_alive: bool,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            405: "Method Not Allowed",
        }
        lines = [
            f"HTTP/1.1 {code} {reason[code]}",
            "Server: roitrack-metrics",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{k}: {v}" for k, v in extra),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
