"""Inference backends (tracker_core.inference) on a random yolov7-tiny at small sizes: the same outputs as torch
fp32 within each precision's tolerance, dynamic batch, the auto choice and its parity gate, input checks.

Every backend installed here is tested: CI installs OpenVINO and ONNX Runtime with the dev extra."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker_core.errors import ConfigError, InvalidInputError
from tracker_core.inference import (
    TOLERANCES,
    InferenceOptions,
    build_backend,
    calibration_frame,
    candidates,
    compare,
    installed_backends,
    make_backend,
    supported_precisions,
)
from tracker_core.inference.graphs import ModelGraphs
from tracker_core.inference.parity import run_outputs

SIZE = 160


@pytest.fixture(scope="module")
def models():
    from server.loading import random_appearance
    from tracker_core.detector import build_detector

    det = build_detector("yolov7-tiny", fuse=True, seed=0)
    return det, random_appearance(det, seed=0)


@pytest.fixture(scope="module")
def mix_models():
    """A MixEncoder reading spp + s8 + pixels2 with every block weighted (the default trained encoder's layout)."""
    from tracker_core.detector import build_detector
    from tracker_core.encoder import Appearance, EncoderMeta, MixEncoder

    det = build_detector("yolov7-tiny", fuse=True, seed=0)
    taps = {"32": 256, "8": 64, "1": 12}
    torch.manual_seed(0)
    enc = MixEncoder([(int(k), v) for k, v in taps.items()]).eval()
    enc.set_block_weight("learned", 1.0)
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp+s8+pixels2",
        tap_channels=taps,
        arch="mix",
        blocks=enc.blocks,
    )
    return det, Appearance(enc, meta.spec, {32: 256, 8: 64})


def _pairs() -> list[tuple[str, str]]:
    return [(b, p) for b in installed_backends() for p in supported_precisions(b)]


def test_the_optional_backends_are_installed_with_the_dev_extra():
    # CI installs `.[dev]`, which brings both: without them their parity tests would silently not run
    assert set(installed_backends()) == {"torch", "openvino", "onnxruntime"}


def test_torch_fp32_is_the_detector_and_encoder_themselves(models):
    det, app = models
    backend = make_backend("torch", "fp32", ModelGraphs(det, app.encoder, (32, 8, 16)), 0, app)
    x = torch.rand(2, 3, SIZE, SIZE)
    maps, pred = backend.forward_taps(x)
    ref_maps, ref_pred = det.forward_taps(x)
    assert torch.equal(pred, ref_pred) and all(torch.equal(maps[s], ref_maps[s]) for s in (8, 16, 32))
    feats = torch.randn(5, 256, 10, 10)
    with torch.no_grad():
        np.testing.assert_array_equal(backend.encode(feats), app.encoder(feats).numpy())


@pytest.mark.parametrize("pair", _pairs(), ids=lambda p: "/".join(p))
def test_every_backend_matches_torch_fp32_on_the_calibration_frame(models, pair, tmp_path: Path):
    det, app = models
    graphs = ModelGraphs(det, app.encoder, (32,))
    ref = make_backend("torch", "fp32", graphs, 0, app)
    backend = make_backend(*pair, graphs, 2, app, cache=None)
    frame, boxes = calibration_frame()
    x, tf = det.preprocess([frame], (SIZE, SIZE))
    want = run_outputs(ref, x, [boxes], tf)
    got = run_outputs(backend, x, [boxes], tf)
    report = compare(want, got, pair[1])
    assert report.passed, report.summary()
    assert got.pred.dtype == torch.float32 and got.pred.shape == want.pred.shape
    assert got.embeddings is not None and got.embeddings.shape == (len(boxes), app.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(got.embeddings, axis=1), 1.0, atol=1e-5)
    if pair[1] == "bf16":  # not trivially equal: the reduced precision shows, within its tolerance
        assert max(report.maps.values()) > 1e-4


@pytest.mark.parametrize("pair", _pairs(), ids=lambda p: "/".join(p))
def test_mix_encoder_finer_tap_and_dynamic_batch(mix_models, pair):
    """Maps at strides 8 and 32 come back for a spp+s8+pixels2 encoder; batches of 1 and 3 frames and any number
    of boxes go through the same compiled graphs; each frame's rows equal its own single-frame run."""
    det, app = mix_models
    graphs = ModelGraphs(det, app.encoder, app.detector_strides)
    backend = make_backend(*pair, graphs, 2, app)
    ref = make_backend("torch", "fp32", graphs, 0, app)
    assert backend.strides == (32, 8)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    boxes = [np.array([[10, 10, 50, 90], [60, 20, 100, 110]], np.float32), np.zeros((0, 4), np.float32),
             np.array([[5, 5, 150, 115]], np.float32)]  # fmt: skip
    x, tf = det.preprocess(frames, (SIZE, SIZE))
    maps, pred = backend.forward_taps(x)
    assert set(maps) == {32, 8} and maps[8].shape == (3, 64, SIZE // 8, SIZE // 8)
    emb = backend.embed(maps, boxes, tf, x)
    ref_maps, _ = ref.forward_taps(x)
    ref_emb = ref.embed(ref_maps, boxes, tf, x)
    assert emb.shape == ref_emb.shape == (3, app.embed_dim)
    cos = (emb * ref_emb).sum(1)
    assert cos.min() >= TOLERANCES[pair[1]].embed_cos
    one = backend.forward_taps(x[2:3])[1]
    assert float((one - pred[2:3]).norm() / pred[2:3].norm()) <= 1e-5  # batch 1 = row 2 of batch 3
    assert backend.encode(torch.zeros(0, app.encoder.in_channels, 10, 10)).shape == (0, app.embed_dim)


def test_bad_inputs_are_named_errors(models):
    det, app = models
    backend = make_backend("torch", "fp32", ModelGraphs(det, app.encoder), 0, app)
    with pytest.raises(InvalidInputError):
        backend.forward_taps(torch.rand(1, 3, 100, 160))
    with pytest.raises(InvalidInputError):
        backend.encode(torch.rand(2, 7, 10, 10))


def test_candidates_follow_the_options_and_the_hardware(monkeypatch):
    from tracker_core.inference import select

    auto = candidates(InferenceOptions())
    assert auto[0] == ("torch", "fp32")
    assert set(auto) == set(_pairs())
    assert candidates(InferenceOptions(backend="onnxruntime", precision="fp32")) == [("onnxruntime", "fp32")]
    assert all(p == "fp32" for _, p in candidates(InferenceOptions(precision="fp32")))
    with pytest.raises(ConfigError, match="onnxruntime on this CPU runs fp32, not bf16"):
        candidates(InferenceOptions(backend="onnxruntime", precision="bf16"))
    with pytest.raises(ConfigError, match="fp16 is the GPU precision"):
        candidates(InferenceOptions(precision="fp16"))
    with pytest.raises(ConfigError, match="on a GPU"):
        candidates(InferenceOptions(backend="openvino"), device_type="cuda")
    assert candidates(InferenceOptions(), device_type="cuda") == [("torch", "fp16")]
    monkeypatch.setattr(select, "installed_backends", lambda: ("torch",))
    with pytest.raises(ConfigError, match=r"pip install 'roitrack\[openvino\]'"):
        candidates(InferenceOptions(backend="openvino"))
    # a CPU without bf16 instructions: no bf16 candidate (emulated bf16 is slower than fp32)
    monkeypatch.setattr(select.hardware, "has_fast_bf16", lambda: False)
    assert candidates(InferenceOptions()) == [("torch", "fp32")]
    with pytest.raises(ConfigError, match="backend must be one of"):
        InferenceOptions(backend="tensorrt")
    with pytest.raises(ConfigError):
        InferenceOptions(precision="int8")


def test_auto_keeps_the_fastest_candidate_that_passes_parity(models):
    det, app = models
    backend = build_backend(det, app, InferenceOptions(), input_size=SIZE)
    sel = backend.selection
    assert sel is not None and sel["mode"] == "auto" and sel["verified"]
    assert sel["chosen"] == backend.label
    recs = {f"{r['backend']}/{r['precision']}": r for r in sel["candidates"]}
    assert set(recs) == {f"{b}/{p}" for b, p in _pairs()}
    timed = {k: r["ms"] for k, r in recs.items() if "ms" in r}
    assert all(r["parity"]["passed"] for r in recs.values())
    # the chosen one was measured fastest among those timed to the end
    full = {
        k: v
        for k, v in timed.items()
        if recs[k]["timed_rounds"] == max(r["timed_rounds"] for r in recs.values())
    }
    assert backend.label in full and timed[backend.label] == min(full.values())
    assert sel["reference_ms"] == recs["torch/fp32"]["ms"]


def test_auto_rejects_a_backend_that_fails_parity(models, monkeypatch, caplog):
    """With a bf16 tolerance nothing can meet, auto drops every bf16 candidate and says why."""
    from tracker_core.inference import parity

    det, app = models
    monkeypatch.setitem(parity.TOLERANCES, "bf16", parity.Tolerance(1e-9, 1e-9, 1e-9, 1.0))
    with caplog.at_level(logging.WARNING, logger="tracker_core.inference.select"):
        backend = build_backend(det, app, InferenceOptions(), input_size=SIZE)
    assert backend.precision == "fp32"
    recs = backend.selection["candidates"]
    bf16 = [r for r in recs if r["precision"] == "bf16"]
    assert bf16 and all(not r["parity"]["passed"] and "ms" not in r for r in bf16)
    assert "rejected: differs from torch fp32" in caplog.text


def test_explicit_backend_is_verified_but_kept(models, monkeypatch, caplog):
    from tracker_core.inference import parity

    det, app = models
    monkeypatch.setitem(parity.TOLERANCES, "fp32", parity.Tolerance(1e-12, 1e-12, 1e-12, 1.0))
    with caplog.at_level(logging.WARNING, logger="tracker_core.inference.select"):
        backend = build_backend(
            det, app, InferenceOptions(backend="onnxruntime", precision="fp32"), input_size=SIZE
        )
    assert backend.label == "onnxruntime/fp32" and backend.selection["mode"] == "explicit"
    assert "running it as asked" in caplog.text
    # the reference itself is not compared with itself
    ref = build_backend(det, app, InferenceOptions(backend="torch", precision="fp32"), input_size=SIZE)
    assert ref.label == "torch/fp32" and ref.selection["verified"] is False


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_exports_are_cached_and_a_corrupt_entry_is_rebuilt(models, name, tmp_path: Path, caplog):
    from tracker_core.inference import ExportCache

    det, app = models
    cache = ExportCache(tmp_path / "cache")
    graphs = ModelGraphs(det, app.encoder)
    first = make_backend(name, "fp32", graphs, 1, app, cache=cache)
    assert first.cache_hits == [False]  # the encoder core at build; the detector on its first input shape
    x = torch.rand(1, 3, SIZE, SIZE)
    want = first.forward_taps(x)[1]
    assert first.cache_hits == [False, False]
    second = make_backend(name, "fp32", ModelGraphs(det, app.encoder), 1, app, cache=cache)
    second.forward_taps(x)
    assert second.cache_hits == [True, True]
    # damage every cached model file: the next build notices, rebuilds, and gives the same outputs
    for f in cache.root.iterdir():
        if f.suffix in (".onnx", ".bin"):
            f.write_bytes(f.read_bytes()[:-7] + b"garbage")
    with caplog.at_level(logging.WARNING, logger="tracker_core.inference.cache"):
        third = make_backend(name, "fp32", ModelGraphs(det, app.encoder), 1, app, cache=cache)
        got = third.forward_taps(x)[1]
    assert third.cache_hits == [False, False] and "rebuilding" in caplog.text
    torch.testing.assert_close(got, want, rtol=0, atol=1e-3)
