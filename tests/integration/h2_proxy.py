"""A loopback TCP proxy that reads just enough HTTP/2 (frame headers, gRPC message prefixes) to break one gRPC
call at a chosen point, so a test can make gRPC core itself produce a call's status - deterministically.

:class:`ResetProxy` forwards whole HTTP/2 frames both ways and counts the gRPC messages of every stream. Once a
stream has had ``after`` responses and every request sent on it is answered, the next request message is cut:
half of its DATA frame goes to the server, the client gets an ``RST_STREAM(INTERNAL_ERROR)`` for that stream, and
the server's connection is dropped (mid-frame). The client's gRPC core then ends the call with ``INTERNAL``
("Received RST_STREAM with error code 2") and no trailing metadata; the server never saw the cut request, so it
processed exactly the frames it answered. Then the client's connection is closed too, and later connections are
refused (the replica behind the proxy is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, RST_STREAM = 0x0, 0x3
PADDED = 0x8
INTERNAL_ERROR = 0x2


class _Messages:
    """Counts complete gRPC messages (1-byte flag + 4-byte length prefix + body) in one stream's DATA bytes."""

    def __init__(self) -> None:
        self.count = 0
        self._head = b""
        self._left = -1  # body bytes still to come; -1: reading a prefix

    def feed(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._left < 0:
                take = min(5 - len(self._head), len(data) - i)
                self._head += data[i : i + take]
                i += take
                if len(self._head) == 5:
                    self._left = int.from_bytes(self._head[1:5], "big")
                    self._head = b""
                    if self._left == 0:
                        self.count += 1
                        self._left = -1
            else:
                take = min(self._left, len(data) - i)
                self._left -= take
                i += take
                if self._left == 0:
                    self.count += 1
                    self._left = -1


def _data_payload(flags: int, payload: bytes) -> bytes:
    if flags & PADDED and payload:
        pad = payload[0]
        return payload[1 : len(payload) - pad]
    return payload


async def _frames(r: asyncio.StreamReader):  # type: ignore[no-untyped-def]
    """Yield ``(raw frame bytes, type, flags, stream id, payload)`` until the connection ends."""
    while True:
        head = await r.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        payload = await r.readexactly(length) if length else b""
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        yield head + payload, head[3], head[4], sid, payload


class ResetProxy:
    def __init__(self, target_port: int, after: int) -> None:
        self.target_port = target_port
        self.after = after
        self.port = 0
        self.cut_stream: int | None = None  # the HTTP/2 stream id that was reset
        self.cut_done = asyncio.Event()
        self.refused = 0  # connections refused after the cut
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self.cut_done.is_set():  # the replica behind the proxy is gone
            self.refused += 1
            cw.transport.abort()
            return
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [cw, sw]
        requests: defaultdict[int, _Messages] = defaultdict(_Messages)
        responses: defaultdict[int, _Messages] = defaultdict(_Messages)

        async def server_to_client() -> None:
            with contextlib.suppress(Exception):
                async for raw, kind, flags, sid, payload in _frames(sr):
                    if kind == DATA:
                        responses[sid].feed(_data_payload(flags, payload))
                    cw.write(raw)  # whole frames only: an injected frame always lands between two
                    await cw.drain()

        async def client_to_server() -> None:
            with contextlib.suppress(Exception):
                sw.write(await cr.readexactly(len(PREFACE)))
                async for raw, kind, flags, sid, payload in _frames(cr):
                    if kind == DATA and not self.cut_done.is_set():
                        sent, answered = requests[sid].count, responses[sid].count
                        # the open has no answer: every frame sent so far was answered when answered == sent - 1
                        if answered >= self.after and answered == sent - 1:
                            sw.write(raw[: 9 + len(payload) // 2])  # half a request reaches the server
                            await sw.drain()
                            sw.transport.abort()
                            rst = (4).to_bytes(3, "big") + bytes([RST_STREAM, 0]) + sid.to_bytes(4, "big")
                            cw.write(rst + INTERNAL_ERROR.to_bytes(4, "big"))
                            await cw.drain()
                            self.cut_stream = sid
                            self.cut_done.set()
                            await asyncio.sleep(0.2)  # the client reads the reset, then the replica is gone
                            cw.close()
                            return
                        requests[sid].feed(_data_payload(flags, payload))
                    sw.write(raw)
                    await sw.drain()

        await asyncio.gather(server_to_client(), client_to_server())
