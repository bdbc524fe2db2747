"""Prometheus metrics the server exports (one registry per server instance, so tests can run several).

Names follow Prometheus conventions: ``roitrack_`` prefix, base units in the name, ``_total`` for counters.
The Grafana dashboard and the alert rules in ``deploy/`` may only query names defined here; a test reads
this registry to check that.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.035,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.4,
    0.6,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)

# Stages a frame goes through; the values of the ``stage`` label of roitrack_stage_latency_seconds.
STAGES = (
    "queue",
    "decode",
    "letterbox",
    "inference",
    "nms",
    "roi_align",
    "encoder",
    "reid",
    "camera_motion",
    "tracking",
    "serialize",
)
# Buckets of roitrack_reid_crop_seconds (time per crop) and roitrack_reid_crops_per_frame.
CROP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128)
CROPS_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# Values of the ``reason`` label of roitrack_frames_failed_total.
FAILURE_REASONS = (
    "invalid_image",
    "image_too_large",
    "invalid_detections",
    "too_many_detections",
    "invalid_timestamp",
    "internal",
)

# Values of the ``origin`` label of roitrack_stream_resumes_total.
RESUME_ORIGINS = ("same_replica", "other_replica")


# Values of the `stream` label when per-stream labels are off, and for the streams past the cap.
ALL_STREAMS = "all"
OTHER_STREAMS = "other"


class ServerMetrics:
    """All metric families of one server. ``registry`` is what ``/metrics`` exposes.

    The ``stream`` label of the per-stream families never grows without bound: it is ``"all"`` unless
    ``stream_labels`` (``metrics_stream_labels``) opts in to per-stream values, and then at most that many streams
    held at once get their own (``owner/stream_id``); the rest share ``"other"``. A forgotten stream's series go.
    """

    def __init__(self, registry: CollectorRegistry | None = None, stream_labels: int = 0) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stream_labels = stream_labels
        self._labels: dict[str, str] = {}  # session key -> its label value
        self._tracks: dict[str, int] = {}  # session key -> the active tracks it last reported
        r = self.registry
        self.frame_latency = Histogram(
            "roitrack_frame_latency_seconds",
            "End-to-end time from a frame's arrival at the server to its response being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_latency = Histogram(
            "roitrack_stage_latency_seconds",
            "Time per frame spent in each pipeline stage (batched stages are divided over the batch).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reid_crop_latency = Histogram(
            "roitrack_reid_crop_seconds",
            "ReID model time per crop (crop, resize, normalise, onnxruntime) of each frame's batch, observed per "
            "frame that used the ReID embedding and had boxes.",
            buckets=CROP_BUCKETS,
            registry=r,
        )
        self.reid_crops_per_frame = Histogram(
            "roitrack_reid_crops_per_frame",
            "Crops the ReID model embedded per frame (frames of streams using the ReID embedding).",
            buckets=CROPS_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "roitrack_batch_size_frames",
            "Frames per batched detector forward.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.frames_processed = Counter(
            "roitrack_frames_processed_total", "Frames answered with tracks.", ["stream"], registry=r
        )
        self.frames_dropped = Counter(
            "roitrack_frames_dropped_total",
            "Frames dropped by backpressure (the oldest waiting frame is dropped when a stream's queue is full).",
            ["stream"],
            registry=r,
        )
        self.frames_failed = Counter(
            "roitrack_frames_failed_total",
            "Frames answered with a per-frame error (undecodable image, wrong raw size, bad boxes).",
            ["reason"],
            registry=r,
        )
        self.client_detections_dropped = Counter(
            "roitrack_client_detections_dropped_total",
            "Client detections dropped because they lie wholly outside their frame (the frame's other boxes "
            "are tracked; each response's dropped_detections counts its own).",
            registry=r,
        )
        self.active_streams = Gauge("roitrack_active_streams", "Streams with a live call.", registry=r)
        self.active_tracks = Gauge(
            "roitrack_active_tracks", "Confirmed and lost tracks held per stream.", ["stream"], registry=r
        )
        self.queue_depth = Gauge(
            "roitrack_queue_depth_frames", "Frames waiting in the batcher's queue.", registry=r
        )
        self.gpu_memory_allocated = Gauge(
            "roitrack_gpu_memory_allocated_bytes",
            "GPU memory held by tensors (torch.cuda).",
            ["device"],
            registry=r,
        )
        self.gpu_memory_reserved = Gauge(
            "roitrack_gpu_memory_reserved_bytes",
            "GPU memory reserved by torch's caching allocator.",
            ["device"],
            registry=r,
        )
        self.gpu_memory_total = Gauge(
            "roitrack_gpu_memory_total_bytes", "Total memory of the GPU.", ["device"], registry=r
        )
        self.gpu_memory_used = Gauge(
            "roitrack_gpu_memory_used_bytes",
            "GPU memory in use by all processes (NVML when available, else reserved).",
            ["device"],
            registry=r,
        )
        self.model_info = Info(
            "roitrack_model",
            "Detector arch, weights/encoder/ReID model sha256, device, input size, and the inference backend and "
            "precision running the models (chosen at start-up with --backend auto).",
            registry=r,
        )
        self.up = Gauge("roitrack_serving", "1 when the health service reports SERVING, else 0.", registry=r)
        # Durable stream state (--state-store); these stay at zero without a store.
        self.snapshot_writes = Counter(
            "roitrack_snapshot_writes_total",
            "Stream snapshots written to the state store, by trigger (interval, close, drain).",
            ["trigger"],
            registry=r,
        )
        self.snapshot_loads = Counter(
            "roitrack_snapshot_loads_total",
            "Stream snapshots read from the state store on resume.",
            registry=r,
        )
        self.snapshot_failures = Counter(
            "roitrack_snapshot_failures_total",
            "State store operations that failed (connect, write, load, lease) or snapshots refused as corrupt, "
            "foreign, incompatible or another principal's (refused).",
            ["op"],
            registry=r,
        )
        self.snapshot_latency = Histogram(
            "roitrack_snapshot_latency_seconds",
            "Time to encode + write (write) or read + decode (load) one stream snapshot.",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshot_bytes = Histogram(
            "roitrack_snapshot_size_bytes",
            "Size of written stream snapshots.",
            buckets=(1e3, 4e3, 16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6),
            registry=r,
        )
        self.stream_resumes = Counter(
            "roitrack_stream_resumes_total",
            "Streams resumed, by where their state came from: this replica (memory or its own snapshot) or "
            "another replica (a snapshot it wrote).",
            ["origin"],
            registry=r,
        )
        self.state_store_up = Gauge(
            "roitrack_state_store_up",
            "1 while the state store answers; 0 while streams are degraded to in-memory state.",
            registry=r,
        )
        self.state_store_degraded = Counter(
            "roitrack_state_store_degraded_total",
            "Times the state store became unreachable and the server degraded to in-memory stream state.",
            registry=r,
        )

    def init_stages(self) -> None:
        """Create every ``stage`` series up front so dashboards see all stages from the first scrape."""
        for stage in STAGES:
            self.stage_latency.labels(stage)
        for reason in FAILURE_REASONS:
            self.frames_failed.labels(reason)
        for origin in RESUME_ORIGINS:
            self.stream_resumes.labels(origin)

    def update_gpu_memory(self, device: object) -> None:
        """Refresh the GPU memory gauges of a CUDA ``device`` (torch.cuda; NVML for the device-wide figure when
        ``pynvml`` is installed). A no-op on CPU."""
        import torch

        dev = torch.device(device)  # type: ignore[call-overload]
        if dev.type != "cuda" or not torch.cuda.is_available():
            return
        label = str(dev)
        self.gpu_memory_allocated.labels(label).set(torch.cuda.memory_allocated(dev))
        reserved = torch.cuda.memory_reserved(dev)
        self.gpu_memory_reserved.labels(label).set(reserved)
        free, total = torch.cuda.mem_get_info(dev)
        self.gpu_memory_total.labels(label).set(total)
        used = float(total - free)
        try:  # NVML: memory used by every process on the device
            import pynvml

            pynvml.nvmlInit()
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            used = float(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used)
        except Exception:
            pass
        self.gpu_memory_used.labels(label).set(used)

    def stream_label(self, key: str) -> str:
        """The ``stream`` label value of the session ``key`` (bounded: see the class docstring)."""
        if self.stream_labels <= 0:
            return ALL_STREAMS
        label = self._labels.get(key)
        if label is None:
            own = sum(1 for v in self._labels.values() if v != OTHER_STREAMS)
            label = key if own < self.stream_labels else OTHER_STREAMS
            self._labels[key] = label
        return label

    def set_active_tracks(self, key: str, n: int) -> None:
        """Stream ``key`` now holds ``n`` tracks (streams sharing a label add up)."""
        old = self._tracks.get(key, 0)
        self._tracks[key] = n
        self.active_tracks.labels(self.stream_label(key)).inc(n - old)

    def forget_stream(self, key: str) -> None:
        """A stream is gone: take its tracks off the gauge and drop its own labelled series."""
        old = self._tracks.pop(key, 0)
        label = self._labels.pop(key, None) if self.stream_labels > 0 else ALL_STREAMS
        if old and label is not None:
            self.active_tracks.labels(label).dec(old)
        if label is not None and label not in (ALL_STREAMS, OTHER_STREAMS):
            for fam in (self.frames_processed, self.frames_dropped, self.active_tracks):
                with contextlib.suppress(KeyError):
                    fam.remove(label)
