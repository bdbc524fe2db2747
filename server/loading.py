"""Config -> models: the detector (our safetensors, or random), the optional encoder, on the chosen device."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

from server.config import ServerConfig, reid_options
from server.model_runner import ModelRunner, pick_device

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_runner(cfg: ServerConfig) -> ModelRunner:
    """Load the models ``cfg`` names. Raises ``WeightsError`` (missing/corrupt files, an encoder trained on
    another detector, a ReID model onnxruntime cannot run) or ``ConfigError`` (no such device, bad ReID input
    settings, no onnxruntime)."""
    from tracker_core.detector import build_detector, load_detector
    from tracker_core.encoder import Appearance
    from tracker_core.inference import build_backend

    device = pick_device(cfg.device)
    if cfg.weights is not None:
        detector = load_detector(cfg.weights, device=device, fuse=cfg.fuse)
    else:
        log.warning(
            "NO DETECTOR WEIGHTS: using a randomly initialised %s; its detections are meaningless "
            "(send client detections, or pass --weights)",
            cfg.arch,
        )
        detector = build_detector(cfg.arch, device=device, fuse=cfg.fuse)
    appearance = None
    encoder_sha = ""
    if cfg.encoder is not None:
        appearance = Appearance.from_checkpoint(cfg.encoder, detector=detector, device=device)
        encoder_sha = file_sha256(cfg.encoder)
    elif cfg.random_encoder:
        log.warning("RANDOM ENCODER: appearance embeddings come from a randomly initialised ROI encoder")
        appearance = random_appearance(detector)
        encoder_sha = "random"
    else:
        log.info("no encoder: no ROI appearance embeddings")
    reid = None
    if cfg.reid_model is not None:
        from tracker_core.reid import load_reid_model

        reid = load_reid_model(
            cfg.reid_model,
            reid_options(cfg),
            device=device,
            max_batch=cfg.reid_max_batch,
            threads=cfg.reid_threads,
        )
    backend = build_backend(
        detector,
        appearance,
        inference_options(cfg),
        input_size=cfg.input_size,
    )
    log.info("inference: %s", describe_backend(backend))
    runner = ModelRunner(
        detector,
        appearance,
        encoder_sha256=encoder_sha,
        input_size=cfg.input_size,
        max_pixels=cfg.max_pixels,
        max_detections=cfg.max_detections,
        device_preprocess=cfg.device_preprocess,
        backend=backend,
        reid=reid,
    )
    if cfg.weights is None:
        runner.info = dataclasses.replace(runner.info, weights_sha256="random")
    return runner


def inference_options(cfg: ServerConfig) -> Any:
    """The ``tracker_core.inference.InferenceOptions`` of ``cfg``."""
    from tracker_core.inference import InferenceOptions

    return InferenceOptions(
        backend=cfg.backend,
        precision=cfg.precision,
        threads=cfg.inference_threads,
        cache_dir=cfg.inference_cache,
    )


def describe_backend(backend: Any) -> str:
    """One line: the backend and precision running, and (auto) what it was chosen over."""
    from tracker_core.inference import describe_selection

    sel = backend.selection or {}
    how = sel.get("mode", "explicit")
    line = f"{backend.label} ({backend.threads} threads) on {backend.device.type}, {how}"
    if sel.get("verified"):
        line += f": {describe_selection(sel)}"
    return line


def random_appearance(
    detector: Any, width: int | None = None, hidden: int | None = None, seed: int = 0
) -> Any:
    """A randomly initialised ROI encoder (default sizes, as `roitrack train` makes) on the detector's SPP tap
    (``tracker_core.encoder.Appearance``)."""
    import torch

    from tracker_core.encoder import Appearance, EncoderMeta, build_encoder

    meta = EncoderMeta(
        detector_arch=detector.arch,
        detector_sha256=detector.weights_sha256,
        features="spp",
        tap_channels={"32": int(detector.tap_channels)},
    )
    if width is not None or hidden is not None:
        meta = dataclasses.replace(meta, width=width or meta.width, hidden=hidden or meta.hidden)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        encoder = build_encoder(meta).to(detector.device)
    finally:
        torch.random.set_rng_state(state)
    return Appearance(encoder, meta.spec, {32: int(detector.tap_channels)})


def tracker_factory(**overrides: Any) -> Any:
    """A factory of per-stream trackers; lost tracks are always produced (each stream filters them)."""
    from tracker_core.tracking import DEFAULT_CONFIG, Tracker

    config = dataclasses.replace(DEFAULT_CONFIG, output_lost=True, **overrides)

    def make() -> Tracker:
        return Tracker(config)

    return make
