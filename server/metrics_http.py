"""The metrics port: an HTTP server that answers ``GET /metrics`` (Prometheus text format) and nothing else."""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def _handler_for(registry: CollectorRegistry, token: str | None = None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None

    class MetricsHandler(BaseHTTPRequestHandler):
        server_version = "roitrack-metrics"
        sys_version = ""

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


class MetricsHTTPServer:
    """Serves ``registry`` on ``host:port`` (``port`` 0 picks a free one) from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, token: str | None = None) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(registry, token))
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
