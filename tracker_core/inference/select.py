"""``build_backend``: the backend and precision to run, chosen (``auto``) or as asked, checked against torch fp32.

``auto`` on the CPU: every installed backend at every precision this CPU runs fast (``fp32``; ``bf16`` where it
has AVX-512 BF16 / AMX) is built, run on the calibration frame and compared with torch fp32 (``parity.py``); the
ones within their precision's tolerance are timed in interleaved rounds (detector forward + the encoder on the
frame's boxes: the model work of one frame) and the fastest is kept. Torch fp32 itself is a candidate, so the
choice is never slower than it was measured to be. ``auto`` on CUDA: torch fp16 (the GPU path).

An explicit backend / precision is built as asked; unless it is the reference it is compared with torch fp32 too,
and a failed comparison is logged as a warning (it is what was asked for). The choice and what was measured go to
``backend.selection`` (the server logs it and exports the backend and precision as metric labels).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tracker_core.errors import ConfigError
from tracker_core.inference import hardware
from tracker_core.inference.base import InferenceBackend
from tracker_core.inference.cache import ExportCache
from tracker_core.inference.graphs import ModelGraphs
from tracker_core.inference.options import EXTRAS, REFERENCE, InferenceOptions
from tracker_core.inference.parity import ModelOutputs, ParityReport, calibration_frame, compare, run_outputs
from tracker_core.inference.torch_backend import TorchBackend

log = logging.getLogger(__name__)

CPU_BACKENDS = ("torch", "openvino", "onnxruntime")
TIMED_ROUNDS = 3
DROP_FACTOR = (
    3.0  # after the first timed round, candidates this much slower than the fastest stop being timed
)


def installed_backends() -> tuple[str, ...]:
    """The backends importable here (torch always; the others from their pip extras)."""
    from tracker_core.inference import onnxruntime_backend, openvino_backend

    out = ["torch"]
    if openvino_backend.available():
        out.append("openvino")
    if onnxruntime_backend.available():
        out.append("onnxruntime")
    return tuple(out)


def supported_precisions(backend: str, device_type: str = "cpu") -> tuple[str, ...]:
    """Precisions ``backend`` runs on this machine (fast ones only: no emulated bf16)."""
    if device_type == "cuda":
        return ("fp16",) if backend == "torch" else ()
    if backend == "torch":
        return ("fp32", "bf16") if hardware.has_fast_bf16() else ("fp32",)
    if backend == "openvino":
        from tracker_core.inference import openvino_backend

        return openvino_backend.supported_precisions()
    if backend == "onnxruntime":
        from tracker_core.inference import onnxruntime_backend

        return onnxruntime_backend.supported_precisions()
    raise ConfigError(f"unknown backend {backend!r}")


def candidates(options: InferenceOptions, device_type: str = "cpu") -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs ``options`` allows on this machine, reference first. ``ConfigError`` when an
    explicit backend is not installed or does not run the asked precision, or nothing is left."""
    if device_type == "cuda":
        if options.backend not in ("auto", "torch"):
            raise ConfigError(
                f"--backend {options.backend} runs on the CPU; on a GPU the backend is torch (fp16)"
            )
        if options.precision not in ("auto", "fp16"):
            raise ConfigError(f"on a GPU the precision is fp16, not {options.precision}")
        return [("torch", "fp16")]
    installed = installed_backends()
    if options.backend != "auto" and options.backend not in installed:
        extra = EXTRAS.get(options.backend, options.backend)
        raise ConfigError(f"backend {options.backend} is not installed: pip install '{extra}'")
    names = CPU_BACKENDS if options.backend == "auto" else (options.backend,)
    out: list[tuple[str, str]] = []
    for name in names:
        if name not in installed:
            continue
        precs = supported_precisions(name)
        if options.precision == "auto":
            out += [(name, p) for p in precs]
        elif options.precision in precs:
            out.append((name, options.precision))
        elif options.backend != "auto":
            why = " (fp16 is the GPU precision)" if options.precision == "fp16" else ""
            raise ConfigError(f"{name} on this CPU runs {', '.join(precs)}, not {options.precision}{why}")
    if not out:
        raise ConfigError(
            f"no installed backend runs {options.precision} on this CPU (installed: {', '.join(installed)})"
            + ("; fp16 is the GPU precision" if options.precision == "fp16" else "")
        )
    out.sort(key=lambda c: c != REFERENCE)
    return out


def make_backend(
    name: str,
    precision: str,
    graphs: ModelGraphs,
    threads: int,
    appearance: Any = None,
    cache: ExportCache | None = None,
) -> InferenceBackend:
    """One backend, as asked (no checks against the reference)."""
    if name == "torch":
        return TorchBackend(graphs, precision, threads, appearance)  # 0: leave torch's own thread count
    if name == "openvino":
        from tracker_core.inference.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(graphs, precision, threads, appearance, cache=cache)
    if name == "onnxruntime":
        from tracker_core.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(graphs, precision, threads, appearance, cache=cache)
    raise ConfigError(f"unknown backend {name!r}")


def _encoder_of(appearance: Any) -> Any:
    return None if appearance is None else appearance.encoder


def build_backend(
    detector: Any,
    appearance: Any = None,
    options: InferenceOptions | None = None,
    input_size: tuple[int, int] | int = (640, 640),
    strides: Sequence[int] | None = None,
) -> InferenceBackend:
    """The backend to serve ``detector`` (+ ``appearance``: ``tracker_core.encoder.Appearance``) with.

    ``input_size``: the serving input (``auto`` measures at it); ``strides``: the maps to return (default: those
    the encoder reads, and 32). See the module docstring for ``auto``."""
    options = options or InferenceOptions()
    size = (
        (int(input_size), int(input_size))
        if isinstance(input_size, int)
        else (
            int(input_size[0]),
            int(input_size[1]),
        )
    )
    if strides is None:
        strides = tuple(appearance.detector_strides) if appearance is not None else (32,)
    graphs = ModelGraphs(detector, _encoder_of(appearance), strides)
    threads = options.threads  # 0: each backend's default for this process's CPUs
    device_type = detector.device.type
    cands = candidates(options, device_type)
    auto = options.backend == "auto" or options.precision == "auto"
    if len(cands) == 1 and (cands[0] == REFERENCE or device_type != "cpu" or not options.verify):
        backend = make_backend(*cands[0], graphs, threads, appearance, _cache(options, cands))
        backend.selection = {
            "mode": "auto" if auto else "explicit",
            "chosen": backend.label,
            "verified": False,
            "candidates": [{"backend": cands[0][0], "precision": cands[0][1]}],
        }
        log.info("inference backend %s (%d threads)", backend.label, backend.threads)
        return backend
    # Measured on a worker thread, where the server runs its models: torch's OpenMP forward called from a
    # process's main thread was 5-20x slower on a loaded CPU (docs/performance.md, Findings 1).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-backend-select") as pool:
        return pool.submit(_choose, cands, graphs, threads, appearance, options, size, auto).result()


def _cache(options: InferenceOptions, cands: Sequence[tuple[str, str]]) -> ExportCache | None:
    return ExportCache(options.cache_dir) if any(b != "torch" for b, _ in cands) else None


def _choose(
    cands: list[tuple[str, str]],
    graphs: ModelGraphs,
    threads: int,
    appearance: Any,
    options: InferenceOptions,
    size: tuple[int, int],
    auto: bool,
) -> InferenceBackend:
    try:
        cache = _cache(options, cands)
    except ConfigError as exc:  # no folder for exported models: auto keeps to torch, an explicit choice fails
        if not auto or all(b != "torch" for b, _ in cands):
            raise
        log.warning("inference: %s; only torch is considered", exc)
        cands = [c for c in cands if c[0] == "torch"]
        cache = None
    detector = graphs.detector
    frame, boxes = calibration_frame()
    x, transforms = detector.preprocess([frame], size)
    box_list = [boxes] if appearance is not None else None
    ref = TorchBackend(graphs, "fp32", threads, appearance)
    ref_out = run_outputs(ref, x, box_list, transforms)
    records: list[dict[str, Any]] = []
    ready: list[tuple[InferenceBackend, dict[str, Any]]] = []
    for name, precision in cands:
        rec: dict[str, Any] = {"backend": name, "precision": precision}
        records.append(rec)
        if (name, precision) == REFERENCE:
            rec["parity"] = {"passed": True, "reference": True}
            ready.append((ref, rec))
            continue
        t0 = time.perf_counter()
        try:
            backend = make_backend(name, precision, graphs, threads, appearance, cache)
            out = run_outputs(backend, x, box_list, transforms)
        except Exception as exc:  # a backend that cannot build or run this model is not a candidate
            if not auto:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"backend {name}/{precision} cannot run this model: {exc}") from exc
            rec["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("inference backend %s/%s unavailable: %s", name, precision, rec["error"])
            continue
        rec["build_s"] = time.perf_counter() - t0
        rec["cache_hits"] = list(getattr(backend, "cache_hits", []))
        report: ParityReport = compare(ref_out, out, precision)
        rec["parity"] = report.as_dict()
        if not report.passed:
            if auto:
                log.warning(
                    "inference backend %s rejected: differs from torch fp32: %s",
                    backend.label,
                    report.summary(),
                )
                backend.close()
                continue
            log.warning(
                "inference backend %s differs from torch fp32 beyond the %s tolerance: %s (running it as asked)",
                backend.label,
                precision,
                report.summary(),
            )
        ready.append((backend, rec))
    if not ready:  # only when auto rejected everything and fp32 torch was not among the candidates
        rec = {
            "backend": "torch",
            "precision": "fp32",
            "parity": {"passed": True, "reference": True},
            "fallback": True,
        }
        records.append(rec)
        ready.append((ref, rec))
    if len(ready) > 1:
        _time_candidates(ready, x, box_list, transforms)
        ready.sort(key=lambda br: br[1].get("ms", float("inf")))
    chosen, chosen_rec = ready[0]
    for b, _ in ready[1:]:
        if b is not chosen and b is not ref:
            b.close()
    ref_ms = next((r.get("ms") for r in records if (r["backend"], r["precision"]) == REFERENCE), None)
    chosen.selection = {
        "mode": "auto" if auto else "explicit",
        "chosen": chosen.label,
        "verified": True,
        "input_shape": list(size),
        "threads": chosen.threads,
        "cpu": hardware.cpu_name(),
        "ms": chosen_rec.get("ms"),
        "reference_ms": ref_ms,
        "speedup_vs_reference": (ref_ms / chosen_rec["ms"]) if ref_ms and chosen_rec.get("ms") else None,
        "candidates": records,
    }
    log.info("inference backend %s chosen (%s)", chosen.label, describe_selection(chosen.selection))
    return chosen


def _time_candidates(
    ready: list[tuple[InferenceBackend, dict[str, Any]]], x: Any, boxes: Any, transforms: Any
) -> None:
    """Median seconds of one frame's model work per candidate, rounds interleaved (one untimed round first)."""
    laps: dict[int, list[float]] = {i: [] for i in range(len(ready))}
    active = set(laps)
    for rnd in range(TIMED_ROUNDS + 1):
        for i in sorted(active):
            backend = ready[i][0]
            t0 = time.perf_counter()
            run_outputs(backend, x, boxes, transforms)
            if rnd:
                laps[i].append(time.perf_counter() - t0)
        if rnd == 1:
            best = min(laps[i][0] for i in active)
            active = {i for i in active if laps[i][0] <= DROP_FACTOR * best}
    for i, (_, rec) in enumerate(ready):
        rec["ms"] = float(np.median(laps[i]) * 1e3)
        rec["timed_rounds"] = len(laps[i])


def describe_selection(sel: dict[str, Any]) -> str:
    """One line: the candidates' times and parity verdicts."""
    parts = []
    for r in sel.get("candidates", []):
        label = f"{r['backend']}/{r['precision']}"
        if "error" in r:
            parts.append(f"{label}: unavailable")
        elif not r.get("parity", {}).get("passed", True):
            parts.append(f"{label}: failed parity")
        elif "ms" in r:
            parts.append(f"{label} {r['ms']:.1f} ms")
        else:
            parts.append(label)
    speed = sel.get("speedup_vs_reference")
    tail = f"; {speed:.2f}x torch/fp32" if speed else ""
    return ", ".join(parts) + tail


__all__ = [
    "ModelOutputs",
    "build_backend",
    "candidates",
    "describe_selection",
    "installed_backends",
    "make_backend",
    "supported_precisions",
]
