"""The metrics port: an HTTP server that answers ``GET /metrics`` (Prometheus text format) and nothing else.

Each connection has a thread, but only for :data:`CONNECTION_TIMEOUT_S` of silence (socket timeout) and at most
:data:`MAX_CONNECTIONS` at once (more are closed at once): idle connections cannot pile up threads.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

CONNECTION_TIMEOUT_S = 5.0
"""A connection that sends nothing for this long is closed (a scrape takes milliseconds)."""
MAX_CONNECTIONS = 32
"""Connections served at once; a connection past this is closed without an answer."""


def _handler_for(registry: CollectorRegistry, token: str | None = None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None

    class MetricsHandler(BaseHTTPRequestHandler):
        server_version = "roitrack-metrics"
        sys_version = ""
        timeout = CONNECTION_TIMEOUT_S  # socket timeout: an idle connection's thread ends

        def _reply(self, code: int, body: bytes, ctype: str, head: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _serve(self, head: bool) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._reply(404, b"not found: this port serves only /metrics\n", "text/plain", head)
                return
            if expected is not None:
                got = (self.headers.get("Authorization") or "").encode("utf-8", "replace")
                if not hmac.compare_digest(got, expected):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="roitrack-metrics"')
                    body = b"unauthorized: send `Authorization: Bearer <metrics_token>`\n"
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return
            self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST, head)

        def log_message(self, format: str, *args: object) -> None:  # quiet: scrapes are frequent
            pass

    return MetricsHandler


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once."""

    daemon_threads = True
    request_queue_size = 128  # accept bursts (the socketserver default of 5 makes clients retry SYNs)

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the limit: close at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out or went away: nothing to log


class MetricsHTTPServer:
    """Serves ``registry`` on ``host:port`` (``port`` 0 picks a free one) from a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        token: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._httpd = _BoundedHTTPServer((host, port), _handler_for(registry, token), max_connections)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="roitrack-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
