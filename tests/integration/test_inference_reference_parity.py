"""Every installed inference backend and precision against torch fp32 on the shared reference vectors
(../shared/reference/yolov7: the official-format checkpoints with random weights, PETS09 frames f0 and f1 at
640x640 and 384x640): predictions, feature maps, detections after NMS (boxes, scores) and ROI embeddings.

Tolerances (``tracker_core.inference.parity.TOLERANCES``, relative L2 errors and a cosine): fp32 1e-4; bf16
boxes 0.05, probabilities 0.08, maps 0.2, embeddings cosine >= 0.99. Our torch fp32 is itself proven against the
official outputs (tests/unit/test_detector_parity.py).

One documented exception, as in the detector's own parity: the official random **yolov7** is chaotic. Rounding only
its fp32 *input* to bf16 already moves its maps by 8 % and its probabilities by 8.5 % (relative L2) and changes 60 %
of its top-300 detections (and among its ~14,000 overlapping candidates even another fp32 kernel's rounding
reorders NMS for ~12 % of them), so no bf16 implementation can meet a fixed tolerance there. For that arch in bf16
the test requires each error within 5x of what rounding the input alone causes (a network that moves that much
under one rounding has no bf16 answer closer to fp32), and the gate of ``--backend auto`` rejects it (it serves
those weights in fp32; docs/performance.md, "Parity").
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tracker_core.inference import (
    TOLERANCES,
    compare,
    installed_backends,
    make_backend,
    match_detections,
    supported_precisions,
)
from tracker_core.inference.graphs import ModelGraphs
from tracker_core.inference.parity import ModelOutputs
from tracker_core.letterbox import LetterboxTransform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ARCHES = ["yolov7-tiny", "yolov7"]
SHAPES = ["640x640", "384x640"]
PAIRS = [(b, p) for b in installed_backends() for p in supported_precisions(b) if (b, p) != ("torch", "fp32")]
CHAOS_FACTOR = 5.0


def _mix_appearance(det: Any) -> Any:
    """A random MixEncoder on spp + s8 + pixels2 with every block weighted (the layout `roitrack train` makes)."""
    from tracker_core.encoder import Appearance, EncoderMeta, MixEncoder

    c32, c8 = int(det.taps_channels[32]), int(det.taps_channels[8])
    taps = {"32": c32, "8": c8, "1": 12}
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
    return Appearance(enc, meta.spec, {32: c32, 8: c8})


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, yolov7_reference) -> dict[str, Any]:
    """Per arch and shape: the input, torch fp32's outputs, its detections, and the fp32 outputs on the input
    rounded to bf16 (the network's own sensitivity to one bf16 rounding)."""
    from tracker_core.detector import convert_weights, load_detector

    manifest = json.loads((yolov7_reference / "manifest.json").read_text())
    out: dict[str, Any] = {}
    tmp = tmp_path_factory.mktemp("ref-weights")
    for arch in ARCHES:
        w = tmp / f"{arch}.safetensors"
        convert_weights(yolov7_reference / manifest["arches"][arch]["checkpoint"], w)
        det = load_detector(w, fuse=True)
        app = _mix_appearance(det)
        graphs = ModelGraphs(det, app.encoder, app.detector_strides)
        vec = np.load(yolov7_reference / f"{arch}-parity.npz")
        ref = make_backend("torch", "fp32", graphs, 0, app)
        for shape in SHAPES:
            h, w_ = (int(v) for v in shape.split("x"))
            x = (
                torch.from_numpy(np.stack([vec[f"f0_{shape}_input_u8"], vec[f"f1_{shape}_input_u8"]])).float()
                / 255
            )
            tf = [LetterboxTransform(1.0, 0, 0, w_, h, w_, h)] * 2
            maps, pred = _on_worker(ref.forward_taps, x)
            dets = [ref.detector.postprocess(pred[i : i + 1], tf[:1], max_det=300)[0] for i in range(2)]
            boxes = [d[0][:60] for d in dets]  # the reference's best 60 boxes of each frame get embedded
            emb = _on_worker(ref.embed, maps, boxes, tf, x)
            rmaps, rpred = _on_worker(ref.forward_taps, x.to(torch.bfloat16).float())
            out[f"{arch}/{shape}"] = {
                "graphs": graphs,
                "app": app,
                "x": x,
                "tf": tf,
                "ref": ModelOutputs(maps, pred, emb),
                "dets": dets,
                "boxes": boxes,
                "rounded": ModelOutputs(rmaps, rpred, _on_worker(ref.embed, rmaps, boxes, tf, x)),
            }
    return out


def _on_worker(fn: Any, *args: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: "/".join(p))
@pytest.mark.parametrize("arch", ARCHES)
def test_backend_matches_torch_fp32_on_the_reference_frames(reference_runs, arch: str, pair: tuple[str, str]):
    name, precision = pair
    for shape in SHAPES:
        run = reference_runs[f"{arch}/{shape}"]
        backend = make_backend(name, precision, run["graphs"], 2, run["app"])
        maps, pred = _on_worker(backend.forward_taps, run["x"])
        emb = _on_worker(backend.embed, maps, run["boxes"], run["tf"], run["x"])
        got = ModelOutputs(maps, pred, emb)
        report = compare(run["ref"], got, precision)
        where = f"{arch} {shape} {name}/{precision}: {report.summary()}"
        matches = [
            match_detections(
                run["dets"][i], backend.detector.postprocess(pred[i : i + 1], run["tf"][:1], max_det=1000)[0]
            )
            for i in range(2)
        ]
        if precision == "fp32":
            assert report.passed, where
            for m in matches:
                assert m["median_iou"] > 0.999 and m["median_score_diff"] < 1e-4, (where, m)
                # tiny: every detection; yolov7: its ~14,000 overlapping candidates let fp32 rounding reorder NMS
                assert m["matched_share"] >= (1.0 if arch == "yolov7-tiny" else 0.8), (where, m)
        elif arch == "yolov7-tiny":
            assert report.passed, where
            for m in matches:
                assert m["matched_share"] >= 0.9 and m["median_iou"] > 0.9, (where, m)
                assert m["median_score_diff"] < 0.01 and m["max_score_diff"] < 0.15, (where, m)
        else:  # the chaotic random yolov7 in bf16: within CHAOS_FACTOR of one input rounding's effect
            sens = compare(run["ref"], run["rounded"], precision)
            assert report.box <= CHAOS_FACTOR * sens.box, (where, sens.summary())
            assert report.prob <= CHAOS_FACTOR * sens.prob, (where, sens.summary())
            for s, v in report.maps.items():
                assert v <= CHAOS_FACTOR * sens.maps[s], (where, sens.summary())
            assert report.embed_cos is not None and sens.embed_cos is not None
            # sqrt(2 (1 - cos)) is the relative L2 error of a unit vector: compare like with like
            assert np.sqrt(1 - report.embed_cos) <= CHAOS_FACTOR * np.sqrt(1 - sens.embed_cos), (
                where,
                sens.summary(),
            )
            assert not report.passed, (
                "the official random yolov7 in bf16 is expected to miss the fixed bf16 tolerance"
            )
        assert emb.shape == run["ref"].embeddings.shape


def test_tolerances_are_stated_for_every_precision():
    assert set(TOLERANCES) == {"fp32", "bf16", "fp16"}
    assert TOLERANCES["fp32"].maps <= 1e-4 and TOLERANCES["bf16"].embed_cos >= 0.99


def test_auto_serves_the_chaotic_yolov7_in_fp32_and_tiny_in_bf16(reference_runs, tmp_path: Path):
    """The start-up gate on the calibration frame: the official random yolov7's bf16 outputs are rejected, so auto
    serves it in fp32; yolov7-tiny's pass, so where the CPU has bf16 the fastest bf16 backend may serve it."""
    from tracker_core.inference import InferenceOptions, build_backend

    y7 = reference_runs["yolov7/640x640"]
    backend = build_backend(y7["graphs"].detector, y7["app"], InferenceOptions(), input_size=320)
    recs = backend.selection["candidates"]
    assert backend.precision == "fp32"
    assert all(not r["parity"]["passed"] for r in recs if r["precision"] == "bf16")
    tiny = reference_runs["yolov7-tiny/640x640"]
    backend = build_backend(tiny["graphs"].detector, tiny["app"], InferenceOptions(), input_size=320)
    recs = backend.selection["candidates"]
    assert all(r["parity"]["passed"] for r in recs if "error" not in r)
