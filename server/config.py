"""Server configuration: defaults < TOML file < ``ROITRACK_*`` environment variables < command-line flags.

:class:`ServerConfig` is frozen and validated by :func:`load_config`; every problem is a ``ConfigError`` (or a
``WeightsError`` for a missing weights file) with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tracker_core.errors import ConfigError, WeightsError

ENV_PREFIX = "ROITRACK_"
ARCHS = ("yolov7", "yolov7-tiny")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``roitrack serve`` can be told. Sizes in bytes/pixels, times in seconds unless named ``_ms``."""

    host: str = "0.0.0.0"
    port: int = 50051
    metrics_port: int = 9108  # 0: no metrics HTTP server
    weights: str | None = None  # our .safetensors detector; None needs random_weights
    random_weights: bool = False  # randomly initialised detector of `arch` (demos, benchmarks, tests)
    arch: str = "yolov7-tiny"  # only used with random_weights
    encoder: str | None = None  # ROI encoder .safetensors; None: appearance off, motion-only tracking
    random_encoder: bool = (
        False  # a randomly initialised encoder (demos, benchmarks: exercises ROI Align + encoder)
    )
    # ONNX person-ReID model on image crops (docs/reid.md): streams may choose it instead of the ROI encoder.
    reid_model: str | None = None
    reid_size: str | None = (
        None  # HEIGHTxWIDTH, e.g. "256x128" (default: the model's input / metadata / sidecar)
    )
    reid_channels: str | None = None  # rgb | bgr (default rgb)
    reid_mean: str | None = None  # "0.485,0.456,0.406" (default ImageNet's)
    reid_std: str | None = None  # "0.229,0.224,0.225" (default ImageNet's)
    reid_pixel_scale: float | None = None  # pixels are divided by this first (default 255)
    reid_config: str | None = None  # JSON sidecar of the above (default: FILE.json beside the model)
    reid_max_batch: int = 64  # crops per onnxruntime run at most
    reid_threads: int = 0  # onnxruntime intra-op threads (0: its default)
    default_embedding: str = (
        "auto"  # a stream that does not choose gets: auto (roi > reid > off) | roi | reid | off
    )
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Inference backend (tracker_core.inference): auto measures the installed ones at start-up and keeps the
    # fastest that matches torch fp32 on a calibration frame; torch | openvino | onnxruntime as asked.
    backend: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (fp16: CUDA)
    inference_threads: int = 0  # intra-op threads of the backend; 0: the CPUs this process may use
    inference_cache: str | None = (
        None  # exported-model cache; None: $ROITRACK_CACHE_DIR or ~/.cache/roitrack/inference
    )
    input_size: int = 640
    fuse: bool = True
    half: bool = False  # fp16 on CUDA
    device_preprocess: bool = True  # on CUDA: decode JPEGs (nvJPEG) and letterbox on the GPU
    token: str | None = None  # bearer token; None: no authentication (its principal is named "default")
    # Several tenants: "name=token,name2=token2" (TOML: a [server.tokens] table of name = "token"; env
    # ROITRACK_TOKENS). Each stream belongs to the principal that opened it; others cannot see or touch it.
    tokens: str | None = None
    metrics_token: str | None = None  # when set, GET /metrics needs `Authorization: Bearer <metrics_token>`
    metrics_stream_labels: int = (
        0  # per-stream `stream` label values on the metrics, at most; 0: one "all" series
    )
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # mutual TLS: clients must present a certificate signed by this CA
    max_streams: int = 64
    max_streams_per_principal: int = 0  # live streams of one principal (tenant) at most; 0: only max_streams
    # Track calls of one principal waiting for their `open` message at most (0: only max_streams bounds them):
    # the other waiting slots stay free for other principals' new streams and resumes.
    max_waiting_per_principal: int = 16
    max_batch: int = 8
    max_wait_ms: float = 20.0  # a batch closes early once every live stream has a frame in it
    batching: bool = True  # False: every frame is its own forward (benchmarks)
    queue_size: int = 2  # frames waiting per stream before the oldest is dropped
    max_message_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    resume_window_s: float = 30.0
    idle_timeout_s: float = 60.0
    open_timeout_s: float = (
        10.0  # a Track call must send its `open` message within this (it holds a stream slot)
    )
    max_detections: int = 1000  # client detections per frame; more fail that frame with TOO_MANY_DETECTIONS
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    # Camera motion compensation of streams that do not choose (StreamOptions.camera_motion): auto | on | off
    camera_motion: str = "auto"
    tracking_threads: int = 4
    warmup: bool = True
    drain_timeout_s: float = 10.0
    # HTTP/2 keepalive: ping a connection after this long without activity and drop it when the ping is not
    # answered within keepalive_timeout_s, so a silently vanished client's stream detaches within ~15 s.
    keepalive_time_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    # The most often a client may ping (`roitrack stream` pings every 10 s); faster pings get the connection closed.
    keepalive_min_client_interval_s: float = 5.0
    check_port: bool = True  # refuse to start when host:port is taken
    # Durable stream state (docs/operations.md#durable-stream-state): None = in-memory only (the default)
    state_store: str | None = None  # redis://HOST:PORT/DB
    snapshot_policy: str = "interval"  # off | on-close | interval
    snapshot_interval_s: float = 2.0  # policy interval: a snapshot of each live stream this often
    state_lease_s: float = (
        10.0  # single-writer lease of a live stream; a crashed replica's expires after this
    )
    replica_id: str | None = None  # this replica's name in leases and snapshots; default HOSTNAME:PORT


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(ServerConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML/env/flag value into the type of field ``name``."""
    typ = _field_types()[name]
    if value is None:
        if "None" in typ:
            return None
        raise ConfigError(f"{name} may not be empty")
    try:
        if typ.startswith("bool"):
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ.startswith("int"):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if typ.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        s = str(value)
        return None if (s == "" and "None" in typ) else s
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {value!r} as {typ.split(' ')[0]}") from None


def _from_mapping(source: str, data: Mapping[str, Any]) -> dict[str, Any]:
    known = _field_types()
    out = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        out[name] = _coerce(name, value)
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys or a ``[server]`` table."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    if "server" in data and isinstance(data["server"], dict):
        data = data["server"]
    if isinstance(data.get("tokens"), dict):  # [server.tokens] name = "token"
        data = {**data, "tokens": ",".join(f"{k}={v}" for k, v in data["tokens"].items())}
    return _from_mapping(f"config file {p}", data)


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``ROITRACK_<FIELD>`` variables (unknown ``ROITRACK_*`` names are ignored: other tools use them)."""
    known = _field_types()
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in known:
                out[name] = _coerce(name, value)
    return out


def load_config(
    toml_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Merge defaults, TOML, environment and flags (``None`` flags are "not given") and validate."""
    merged: dict[str, Any] = {}
    env = dict(os.environ if environ is None else environ)
    if toml_path is None and env.get(ENV_PREFIX + "CONFIG"):
        toml_path = env[ENV_PREFIX + "CONFIG"]
    if toml_path is not None:
        merged.update(read_toml(toml_path))
    merged.update(read_env(env))
    if flags:
        merged.update(_from_mapping("flag", {k: v for k, v in flags.items() if v is not None}))
    cfg = ServerConfig(**merged)
    validate(cfg)
    return cfg


TOKEN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DEFAULT_PRINCIPAL = "default"  # the principal of the single `token`


def named_tokens(cfg: ServerConfig) -> dict[str, str]:
    """Principal name -> bearer token: ``token`` (as "default") plus every ``tokens`` entry. ``ConfigError`` for a
    malformed entry, a short token, or a name or token given twice."""
    out: dict[str, str] = {}
    entries = [(DEFAULT_PRINCIPAL, cfg.token)] if cfg.token is not None else []
    for item in (cfg.tokens or "").split(","):
        if not item.strip():
            continue
        name, sep, token = item.strip().partition("=")
        if not sep:
            raise ConfigError('tokens: each entry is name=token (e.g. tokens = "alice=...,bob=...")')
        entries.append((name.strip(), token.strip()))
    for name, token in entries:
        if not TOKEN_NAME_RE.match(name):
            raise ConfigError(f"tokens: name {name[:70]!r} must be 1..64 characters of [A-Za-z0-9._-]")
        if len(token) < 8:
            raise ConfigError(f"token of {name!r} must be at least 8 characters")
        if name in out:
            raise ConfigError(f"tokens: the name {name!r} is given twice")
        if token in out.values():
            raise ConfigError(f"tokens: {name!r} has the same token as another principal")
        out[name] = token
    return out


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def validate(cfg: ServerConfig) -> None:
    """Raise ``ConfigError``/``WeightsError`` naming the first bad setting."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(0 <= cfg.port <= 65535, f"port must be 0..65535, got {cfg.port}")
    need(0 <= cfg.metrics_port <= 65535, f"metrics_port must be 0..65535, got {cfg.metrics_port}")
    need(
        cfg.metrics_port == 0 or cfg.port == 0 or cfg.metrics_port != cfg.port,
        "metrics_port must differ from port",
    )
    if cfg.weights is None:
        need(
            cfg.random_weights,
            "no detector weights: pass --weights FILE.safetensors (see `roitrack convert-weights`), "
            "or --random-weights for a randomly initialised detector (demos, benchmarks)",
        )
    elif not Path(cfg.weights).is_file():
        raise WeightsError(f"weights file {cfg.weights} does not exist")
    need(not (cfg.encoder and cfg.random_encoder), "give either encoder or random_encoder, not both")
    if cfg.encoder is not None and not Path(cfg.encoder).is_file():
        raise WeightsError(f"encoder file {cfg.encoder} does not exist")
    _validate_reid(cfg)
    need(cfg.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, got {cfg.arch!r}")
    dev = cfg.device
    need(
        dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
        f"device must be auto, cpu, cuda or cuda:N, got {dev!r}",
    )
    from tracker_core.inference.options import BACKENDS, PRECISIONS

    need(cfg.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    need(
        cfg.precision in PRECISIONS,
        f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}",
    )
    need(
        0 <= cfg.inference_threads <= 1024,
        f"inference_threads must be 0 (all CPUs) .. 1024, got {cfg.inference_threads}",
    )
    need(
        cfg.input_size >= 32 and cfg.input_size % 32 == 0,
        f"input_size must be a multiple of 32, got {cfg.input_size}",
    )
    need(cfg.input_size <= 4096, f"input_size must be at most 4096, got {cfg.input_size}")
    need((cfg.tls_cert is None) == (cfg.tls_key is None), "tls_cert and tls_key must be given together")
    need(
        cfg.tls_client_ca is None or cfg.tls_cert is not None,
        "tls_client_ca (mutual TLS) needs tls_cert/tls_key",
    )
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(cfg, name)
        need(path is None or Path(path).is_file(), f"{name} file {path} does not exist")
    need(cfg.token is None or len(cfg.token) >= 8, "token must be at least 8 characters")
    named_tokens(cfg)
    need(
        cfg.metrics_token is None or len(cfg.metrics_token) >= 8,
        "metrics_token must be at least 8 characters",
    )
    need(
        0 <= cfg.metrics_stream_labels <= 1000,
        f"metrics_stream_labels must be 0..1000, got {cfg.metrics_stream_labels}",
    )
    need(1 <= cfg.max_streams <= 10000, f"max_streams must be 1..10000, got {cfg.max_streams}")
    need(
        0 <= cfg.max_streams_per_principal <= cfg.max_streams,
        f"max_streams_per_principal must be 0..max_streams, got {cfg.max_streams_per_principal}",
    )
    need(
        0 <= cfg.max_waiting_per_principal <= 10000,
        f"max_waiting_per_principal must be 0..10000, got {cfg.max_waiting_per_principal}",
    )
    need(1 <= cfg.max_batch <= 256, f"max_batch must be 1..256, got {cfg.max_batch}")
    need(0 <= cfg.max_wait_ms <= 1000, f"max_wait_ms must be 0..1000, got {cfg.max_wait_ms}")
    need(1 <= cfg.queue_size <= 64, f"queue_size must be 1..64, got {cfg.queue_size}")
    need(
        1024 <= cfg.max_message_bytes <= 1 << 30,
        f"max_message_bytes must be 1 KiB..1 GiB, got {cfg.max_message_bytes}",
    )
    need(1 <= cfg.max_pixels <= 1 << 28, f"max_pixels must be 1..2^28, got {cfg.max_pixels}")
    need(cfg.resume_window_s >= 0, "resume_window_s must be >= 0")
    need(cfg.idle_timeout_s > 0, "idle_timeout_s must be > 0")
    need(0 < cfg.open_timeout_s <= 600, f"open_timeout_s must be in (0, 600], got {cfg.open_timeout_s}")
    need(
        1 <= cfg.max_detections <= 100_000,
        f"max_detections must be 1..100000, got {cfg.max_detections}",
    )
    need(0 < cfg.conf_threshold < 1, f"conf_threshold must be in (0, 1), got {cfg.conf_threshold}")
    need(
        cfg.camera_motion in ("auto", "on", "off"),
        f"camera_motion must be auto, on or off, got {cfg.camera_motion!r}",
    )
    need(0 < cfg.iou_threshold < 1, f"iou_threshold must be in (0, 1), got {cfg.iou_threshold}")
    need(1 <= cfg.tracking_threads <= 64, "tracking_threads must be 1..64")
    need(0 <= cfg.drain_timeout_s <= 3600, f"drain_timeout_s must be 0..3600, got {cfg.drain_timeout_s}")
    if cfg.state_store is not None:
        from server.state_store import parse_store_url

        parse_store_url(cfg.state_store)
    need(
        cfg.snapshot_policy in ("off", "on-close", "interval"),
        f"snapshot_policy must be off, on-close or interval, got {cfg.snapshot_policy!r}",
    )
    need(
        0.1 <= cfg.snapshot_interval_s <= 3600,
        f"snapshot_interval_s must be 0.1..3600, got {cfg.snapshot_interval_s}",
    )
    need(1 <= cfg.state_lease_s <= 3600, f"state_lease_s must be 1..3600, got {cfg.state_lease_s}")
    need(
        cfg.replica_id is None or 1 <= len(cfg.replica_id) <= 253,
        "replica_id must be 1..253 characters",
    )
    need(
        0.1 <= cfg.keepalive_time_s <= 3600, f"keepalive_time_s must be 0.1..3600, got {cfg.keepalive_time_s}"
    )
    need(
        0.1 <= cfg.keepalive_timeout_s <= 600,
        f"keepalive_timeout_s must be 0.1..600, got {cfg.keepalive_timeout_s}",
    )
    need(
        0 <= cfg.keepalive_min_client_interval_s <= 3600,
        f"keepalive_min_client_interval_s must be 0..3600, got {cfg.keepalive_min_client_interval_s}",
    )
    if cfg.check_port and cfg.port != 0 and port_in_use(cfg.host, cfg.port):
        raise ConfigError(f"port {cfg.port} on {cfg.host} is already in use (choose another with --port)")
    if cfg.check_port and cfg.metrics_port != 0 and port_in_use(cfg.host, cfg.metrics_port):
        raise ConfigError(
            f"metrics port {cfg.metrics_port} on {cfg.host} is already in use (choose another with --metrics-port)"
        )


def _validate_reid(cfg: ServerConfig) -> None:
    """The ReID model and its input settings, and the default embedding (files are opened by the runner)."""
    from server.embedding import DEFAULT_CHOICES
    from tracker_core.reid import ReidOptions

    flags = ("reid_size", "reid_channels", "reid_mean", "reid_std", "reid_pixel_scale", "reid_config")
    if cfg.reid_model is None:
        given = [f for f in flags if getattr(cfg, f) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} given without reid_model (--reid-model FILE.onnx)")
    elif not Path(cfg.reid_model).is_file():
        raise WeightsError(f"ReID model file {cfg.reid_model} does not exist")
    if cfg.reid_config is not None and not Path(cfg.reid_config).is_file():
        raise ConfigError(f"reid_config file {cfg.reid_config} does not exist")
    ReidOptions.from_strings(
        cfg.reid_size, cfg.reid_channels, cfg.reid_mean, cfg.reid_std, cfg.reid_pixel_scale, cfg.reid_config
    )
    if not 1 <= cfg.reid_max_batch <= 4096:
        raise ConfigError(f"reid_max_batch must be 1..4096, got {cfg.reid_max_batch}")
    if not 0 <= cfg.reid_threads <= 256:
        raise ConfigError(f"reid_threads must be 0..256, got {cfg.reid_threads}")
    if cfg.default_embedding not in DEFAULT_CHOICES:
        raise ConfigError(
            f"default_embedding must be one of {', '.join(DEFAULT_CHOICES)}, got {cfg.default_embedding!r}"
        )
    if cfg.default_embedding == "roi" and not (cfg.encoder or cfg.random_encoder):
        raise ConfigError("default_embedding roi needs an encoder (--encoder or --random-encoder)")
    if cfg.default_embedding == "reid" and cfg.reid_model is None:
        raise ConfigError("default_embedding reid needs --reid-model FILE.onnx")


def reid_options(cfg: ServerConfig) -> Any:
    """The ReID input settings of ``cfg`` (``tracker_core.reid.ReidOptions``)."""
    from tracker_core.reid import ReidOptions

    return ReidOptions.from_strings(
        cfg.reid_size, cfg.reid_channels, cfg.reid_mean, cfg.reid_std, cfg.reid_pixel_scale, cfg.reid_config
    )


def replace(cfg: ServerConfig, **changes: Any) -> ServerConfig:
    """A validated copy with ``changes`` applied."""
    new = dataclasses.replace(cfg, **changes)
    validate(new)
    return new
