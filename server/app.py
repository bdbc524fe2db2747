"""Wiring: config -> model runner, batcher, registry, servicer, health, reflection, auth, TLS, metrics, shutdown.

:class:`TrackingServer` is what ``roitrack serve``, ``roitrack demo``, the benchmarks and the integration tests
start. It binds its port first with health ``NOT_SERVING``, warms the models up, then reports ``SERVING``; on
shutdown it reports ``NOT_SERVING``, refuses new calls, answers the frames already queued, then stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from roitrack_api.roitrack.v1 import tracking_pb2, tracking_pb2_grpc
from server.auth import BearerTokenInterceptor, principal_of
from server.batcher import Batcher
from server.config import ServerConfig, named_tokens
from server.embedding import resolve_default
from server.metrics import ServerMetrics
from server.metrics_http import MetricsHTTPServer
from server.model_runner import ModelRunner
from server.processor import StreamProcessor
from server.registry import SessionRegistry
from server.servicer import ServiceState, TrackingServicer
from server.state_keeper import StateKeeper
from tracker_core.errors import ConfigError

log = logging.getLogger(__name__)

SERVICE_NAME = tracking_pb2.DESCRIPTOR.services_by_name["Tracking"].full_name  # "roitrack.v1.Tracking"


def server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS (and mutual TLS with ``tls_client_ca``) credentials from certificate files, or ``None``."""
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    cert, key = Path(cfg.tls_cert).read_bytes(), Path(cfg.tls_key).read_bytes()
    ca = Path(cfg.tls_client_ca).read_bytes() if cfg.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def keepalive_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    """gRPC keepalive on the server's connections and the policy for the clients' own pings.

    Every ``keepalive_time_s`` the server pings each connection, with or without calls and whether or not it
    sent data; a ping not answered within ``keepalive_timeout_s`` closes the connection, its calls end and their
    streams detach (kept for the resume window): a peer that vanished without closing its socket is noticed
    within ``keepalive_time_s + keepalive_timeout_s`` (15 s by default). Clients may ping every
    ``keepalive_min_client_interval_s`` (``roitrack stream`` pings every 10 s) without being told off.
    """
    return [
        ("grpc.keepalive_time_ms", int(cfg.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
        # gRPC core waits grpc.http2.ping_timeout_ms (60 s by default) for ANY ping's ack - keepalive_timeout_ms
        # alone does not bound it: without this a frozen peer was noticed only after ~60 s.
        ("grpc.http2.ping_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging while no response data flows
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            int(cfg.keepalive_min_client_interval_s * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
    ]


class TrackingServer:
    """One server instance. ``runner`` owns the models; ``tracker_factory`` makes one tracker per stream."""

    def __init__(
        self,
        config: ServerConfig,
        runner: ModelRunner,
        tracker_factory: Callable[[], Any],
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.metrics = metrics or ServerMetrics(stream_labels=config.metrics_stream_labels)
        self.metrics.init_stages()
        self.registry = SessionRegistry(
            tracker_factory,
            max_streams=config.max_streams,
            max_streams_per_principal=config.max_streams_per_principal,
            queue_size=config.queue_size,
            resume_window_s=config.resume_window_s,
            idle_timeout_s=config.idle_timeout_s,
        )
        self.registry.on_forget = self.metrics.forget_stream
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._metrics_http: MetricsHTTPServer | None = None
        self._batcher: Batcher | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._state: ServiceState | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._warm_thread: concurrent.futures.Future[None] | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self.port = 0
        self.metrics_port = 0

    # ---- start ----
    async def start(self, warmup_in_background: bool = False) -> None:
        """Bind, report NOT_SERVING, warm up, report SERVING (``warmup_in_background``: return after binding)."""
        cfg = self.config
        m = self.metrics
        self._batcher = Batcher(
            functools.partial(self.runner.run, max_pixels=cfg.max_pixels, max_detections=cfg.max_detections),
            max_batch=cfg.max_batch,
            max_wait_ms=cfg.max_wait_ms,
            enabled=cfg.batching,
            on_batch=lambda n, dt: m.batch_size.observe(n),
            expected=lambda: max(1, self.registry.live_count),
        )
        self._pool = ThreadPoolExecutor(max_workers=cfg.tracking_threads, thread_name_prefix="roitrack-track")
        processor = StreamProcessor(self._batcher, self._pool, m)
        self._state = ServiceState(
            config=cfg,
            registry=self.registry,
            processor=processor,
            info=self.runner.info,
            appearance_available=self.runner.appearance_available,
            metrics=m,
            embeddings=self.runner.embeddings_available,
            default_embedding=resolve_default(cfg.default_embedding, self.runner.embeddings_available),
            reid_sha256=self.runner.info.reid_sha256,
        )
        tokens = named_tokens(cfg)
        auth = BearerTokenInterceptor(tokens) if tokens else None
        self._state.identify = functools.partial(principal_of, tokens=auth)
        interceptors = [auth] if auth is not None else []
        opts = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0),
            *keepalive_options(cfg),
        ]
        server = grpc.aio.server(interceptors=interceptors, options=opts)
        tracking_pb2_grpc.add_TrackingServicer_to_server(TrackingServicer(self._state), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{cfg.host}:{cfg.port}"
        creds = server_credentials(cfg)
        try:
            port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc} (port in use?)") from None
        if port == 0:
            raise ConfigError(f"cannot listen on {address} (port in use?)")
        self.port = port
        self._server = server
        if cfg.metrics_port:
            try:
                self._metrics_http = MetricsHTTPServer(
                    m.registry, cfg.host, cfg.metrics_port, token=cfg.metrics_token
                )
            except OSError as exc:
                raise ConfigError(f"cannot serve metrics on {cfg.host}:{cfg.metrics_port}: {exc}") from None
            self._metrics_http.start()
            self.metrics_port = self._metrics_http.port
        m.model_info.info(
            {
                "arch": self.runner.info.arch,
                "weights_sha256": self.runner.info.weights_sha256,
                "encoder_sha256": self.runner.info.encoder_sha256 or "none",
                "device": self.runner.info.device,
                "input_size": str(self.runner.info.input_size),
                "backend": self.runner.info.backend,
                "precision": self.runner.info.precision,
                "reid_sha256": self.runner.info.reid_sha256 or "none",
            }
        )
        if cfg.state_store is not None:
            self._state.keeper = await self._start_keeper(port)
        self._batcher.start()
        await server.start()
        log.info(
            "listening on %s (tls=%s, principals=%s)",
            f"{cfg.host}:{port}",
            creds is not None,
            ",".join(sorted(tokens)) or ("mTLS subjects" if cfg.tls_client_ca else "none (no auth)"),
        )
        self._tasks.append(asyncio.get_running_loop().create_task(self._housekeeping()))
        warm = asyncio.get_running_loop().create_task(self._warm_up())
        self._tasks.append(warm)
        if not warmup_in_background:
            await warm

    async def _start_keeper(self, port: int) -> StateKeeper:
        from server.state_store import RedisStateStore, parse_store_url

        cfg = self.config
        assert cfg.state_store is not None
        keeper = StateKeeper(
            RedisStateStore(parse_store_url(cfg.state_store)),
            replica=cfg.replica_id or f"{socket.gethostname()}:{port}",
            metrics=self.metrics,
            policy=cfg.snapshot_policy,
            interval_s=cfg.snapshot_interval_s,
            resume_window_s=cfg.resume_window_s,
            lease_s=cfg.state_lease_s,
        )
        keeper.track_live(lambda: [s.key for s in self.registry.sessions() if s.live])
        await keeper.start()  # Redis down: a warning and state_store_up 0, never a failed start
        return keeper

    async def _warm_up(self) -> None:
        if self.config.warmup:
            t0 = time.perf_counter()
            # Its own thread (not the loop's default executor) so shutdown can tell whether it still runs.
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-warmup")
            self._warm_thread = pool.submit(self.runner.warmup)
            pool.shutdown(wait=False)
            await asyncio.wrap_future(self._warm_thread)
            log.info("models warmed up in %.2f s", time.perf_counter() - t0)
        if self._state is not None and not self._state.draining:
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)
            self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        self.metrics.up.set(1 if status == health_pb2.HealthCheckResponse.SERVING else 0)

    async def _housekeeping(self, period_s: float = 1.0) -> None:
        m = self.metrics
        while True:
            with contextlib.suppress(Exception):
                self.registry.reap()
                m.active_streams.set(self.registry.live_count)
                waiting = sum(s.queued for s in self.registry.sessions())
                m.queue_depth.set(waiting + (self._batcher.pending if self._batcher else 0))
                m.update_gpu_memory(self.runner.info.device)
            if self._state is not None and self._state.keeper is not None:
                with contextlib.suppress(Exception):
                    await self._state.keeper.tick()
            await asyncio.sleep(period_s)

    # ---- stop ----
    async def shutdown(self, drain_timeout_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, answer queued frames, stop; all within ``drain_timeout_s``
        (plus at most ~1 s for the calls' final status), even while a long batch runs: that batch is left to its
        thread and :attr:`stopped_cleanly` turns false (``roitrack serve`` then exits without joining it)."""
        if self._stopped.is_set() or self._server is None or self._state is None:
            return
        timeout = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        self._state.draining = True
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        for s in self.registry.sessions():
            if s.live:
                s.end_input()
        deadline = time.monotonic() + timeout
        while self.registry.live_count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self._server.stop(grace=min(1.0, max(0.1, deadline - time.monotonic())))
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._batcher is not None:
            await self._batcher.stop(timeout_s=max(0.0, deadline - time.monotonic()))
        if self._state.keeper is not None:
            with contextlib.suppress(
                Exception
            ):  # the call-end snapshots still being written, within the drain
                await asyncio.wait_for(
                    self._state.keeper.stop(), timeout=max(0.5, deadline - time.monotonic())
                )
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._metrics_http is not None:
            self._metrics_http.stop()
        self._stopped.set()
        log.info("server stopped")

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`shutdown`: no model work (a batch, the warm-up) is still running on a thread."""
        busy = self._batcher is not None and self._batcher.busy
        warming = self._warm_thread is not None and not self._warm_thread.done()
        return not (busy or warming)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def serve_until_signal(self) -> None:
        """Run until SIGTERM/SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("signal received: draining")
        await self.shutdown()
