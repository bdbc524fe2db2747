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
STAGES = ("queue", "decode", "letterbox", "inference", "nms", "roi_align", "encoder", "tracking", "serialize")

# Values of the ``reason`` label of roitrack_frames_failed_total.
FAILURE_REASONS = (
    "invalid_image",
    "image_too_large",
    "invalid_detections",
    "too_many_detections",
    "invalid_timestamp",
    "internal",
)


class ServerMetrics:
    """All metric families of one server. ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
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
            "roitrack_model", "Detector arch, weights/encoder sha256 and device.", registry=r
        )
        self.up = Gauge("roitrack_serving", "1 when the health service reports SERVING, else 0.", registry=r)

    def init_stages(self) -> None:
        """Create every ``stage`` series up front so dashboards see all stages from the first scrape."""
        for stage in STAGES:
            self.stage_latency.labels(stage)
        for reason in FAILURE_REASONS:
            self.frames_failed.labels(reason)

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

    def forget_stream(self, stream_id: str) -> None:
        """Drop a closed stream's labelled series so label cardinality stays bounded."""
        for fam in (self.frames_processed, self.frames_dropped, self.active_tracks):
            with contextlib.suppress(KeyError):
                fam.remove(stream_id)
