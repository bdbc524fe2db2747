"""tracker_core.reid: crops (against a slow reference), input spec resolution, and the ONNX model plumbing on a
tiny model built here; the real OSNet from ../shared/models where present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reid_models import colour_model, expected_embedding
from tracker_core.errors import ConfigError, InvalidInputError, WeightsError
from tracker_core.reid import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ReidInputSpec,
    ReidOptions,
    crop_resize,
    crop_windows,
    load_reid_model,
    normalise_crops,
    reid_inputs,
)

RNG = np.random.default_rng(0)


def _image(h: int = 60, w: int = 80) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- crops
def test_crop_windows_round_clip_and_keep_a_pixel():
    boxes = np.array(
        [
            [10.4, 5.6, 20.5, 30.49],  # rounded edges
            [-7, -3, 12, 9],  # partly outside: clipped
            [70, 50, 95, 75],  # past the right/bottom edges
            [30.2, 30.2, 30.3, 30.3],  # thinner than a pixel
            [200, 100, 220, 120],  # wholly outside: the nearest corner pixel
            [-50, -50, -10, -10],
        ],
        np.float32,
    )
    win = crop_windows(boxes, 80, 60)
    np.testing.assert_array_equal(
        win,
        [[10, 6, 21, 30], [0, 0, 12, 9], [70, 50, 80, 60], [30, 30, 31, 31], [79, 59, 80, 60], [0, 0, 1, 1]],
    )
    assert win.dtype == np.int64
    with pytest.raises(InvalidInputError, match="NaN"):
        crop_windows(np.array([[0, 0, np.nan, 4]], np.float32), 80, 60)


def _bilinear_reference(src: np.ndarray, h: int, w: int) -> np.ndarray:
    """Slow per-pixel bilinear resize with OpenCV's INTER_LINEAR geometry (half-pixel centres, edge clamp)."""
    sh, sw = src.shape[:2]
    out = np.zeros((h, w, 3), np.float64)
    for y in range(h):
        fy = (y + 0.5) * sh / h - 0.5
        y0 = int(np.floor(fy))
        wy = fy - y0
        if y0 < 0:
            y0, wy = 0, 0.0
        y1 = min(y0 + 1, sh - 1)
        if y0 >= sh - 1:
            y0, y1, wy = sh - 1, sh - 1, 0.0
        for x in range(w):
            fx = (x + 0.5) * sw / w - 0.5
            x0 = int(np.floor(fx))
            wx = fx - x0
            if x0 < 0:
                x0, wx = 0, 0.0
            x1 = min(x0 + 1, sw - 1)
            if x0 >= sw - 1:
                x0, x1, wx = sw - 1, sw - 1, 0.0
            top = (1 - wx) * src[y0, x0] + wx * src[y0, x1]
            bot = (1 - wx) * src[y1, x0] + wx * src[y1, x1]
            out[y, x] = (1 - wy) * top + wy * bot
    return out


@pytest.mark.parametrize("box", [[3, 4, 40, 57], [10.6, 2.2, 17.4, 9.9], [-20, 30, 15, 90], [79.9, 0, 85, 5]])
def test_crop_resize_matches_a_slow_bilinear_reference(box):
    img = _image()
    crops = crop_resize(img, np.array([box], np.float32), 16, 8)
    assert crops.shape == (1, 16, 8, 3) and crops.dtype == np.uint8
    x1, y1, x2, y2 = crop_windows(np.array([box], np.float32), 80, 60)[0]
    ref = _bilinear_reference(img[y1:y2, x1:x2].astype(np.float64), 16, 8)
    assert np.abs(crops[0].astype(np.float64) - ref).max() <= 1.0  # OpenCV's fixed-point weights


def test_normalise_crops_formula_and_channel_order():
    crops = RNG.integers(0, 256, (2, 4, 3, 3), dtype=np.uint8)
    spec = ReidInputSpec(4, 3)
    x = normalise_crops(crops, spec)
    assert x.shape == (2, 3, 4, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    ref = (crops / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x, ref.transpose(0, 3, 1, 2), atol=1e-5)
    bgr = ReidInputSpec(4, 3, channels="bgr", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0), pixel_scale=1.0)
    xb = normalise_crops(crops, bgr)
    ref_b = (crops[..., ::-1].astype(np.float64) - [1.0, 2.0, 3.0]) / [2.0, 4.0, 8.0]
    np.testing.assert_allclose(xb, ref_b.transpose(0, 3, 1, 2), rtol=1e-6)


def test_reid_inputs_keeps_frame_then_box_order():
    a, b = _image(), _image(40, 50)
    ba = np.array([[0, 0, 10, 20], [5, 5, 30, 40]], np.float32)
    bb = np.array([[1, 1, 20, 30]], np.float32)
    spec = ReidInputSpec(8, 4)
    x = reid_inputs([a, b], [ba, bb], spec)
    assert x.shape == (3, 3, 8, 4)
    np.testing.assert_array_equal(x[2], reid_inputs([b], [bb], spec)[0])
    assert reid_inputs([a], [np.zeros((0, 4), np.float32)], spec).shape == (0, 3, 8, 4)


# ------------------------------------------------------------------------------------------------- spec
def test_spec_precedence_model_shape_metadata_sidecar_flags(tmp_path: Path):
    path = colour_model(tmp_path / "m.onnx", height="h", width="w", metadata={"height": 16, "width": 8})
    m = load_reid_model(path)
    assert (m.spec.height, m.spec.width) == (16, 8) and m.spec_origin["height"] == "model metadata"
    assert m.spec.mean == IMAGENET_MEAN and m.spec_origin["mean"] == "default"
    (tmp_path / "m.json").write_text(json.dumps({"width": 6, "channels": "bgr", "pixel_scale": 1}))
    m = load_reid_model(path)
    assert (m.spec.height, m.spec.width, m.spec.channels, m.spec.pixel_scale) == (16, 6, "bgr", 1.0)
    assert m.spec_origin["width"] == "config m.json" and m.spec_origin["height"] == "model metadata"
    m = load_reid_model(path, ReidOptions.from_strings(size="12x5", mean="0.5,0.5,0.5"))
    assert (m.spec.height, m.spec.width, m.spec.mean) == (12, 5, (0.5, 0.5, 0.5))
    assert m.spec_origin["width"] == "flag" and m.spec_origin["channels"] == "config m.json"


def test_spec_errors_name_the_setting(tmp_path: Path):
    free = colour_model(tmp_path / "free.onnx", height="h", width="w")
    with pytest.raises(ConfigError, match="--reid-size"):
        load_reid_model(free)
    fixed = colour_model(tmp_path / "fixed.onnx")  # 8x4
    with pytest.raises(ConfigError, match="height 8, but flag gives 10"):
        load_reid_model(fixed, ReidOptions.from_strings(size="10x4"))
    (tmp_path / "fixed.json").write_text(json.dumps({"hieght": 8}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_reid_model(fixed)
    (tmp_path / "fixed.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON"):
        load_reid_model(fixed)
    for bad in ("256", "axb", "0x128", "256x128x3"):
        with pytest.raises(ConfigError):
            ReidOptions.from_strings(size=bad)
    with pytest.raises(ConfigError):
        ReidOptions.from_strings(mean="1,2")
    with pytest.raises(ConfigError):
        ReidInputSpec(8, 4, std=(1.0, 0.0, 1.0))
    with pytest.raises(ConfigError):
        ReidOptions.from_strings(channels="rgba")


# ------------------------------------------------------------------------------------------------- model
def test_embeddings_are_the_models_output_l2_normalised(tmp_path: Path):
    m = load_reid_model(colour_model(tmp_path / "m.onnx"))
    assert m.embed_dim == 4 and m.providers[0] == "CPUExecutionProvider" and len(m.sha256) == 64
    img = _image()
    boxes = np.array([[0, 0, 30, 40], [20, 10, 70, 55], [-10, -10, 5, 5]], np.float32)
    emb = m.embed_frame(img, boxes)
    assert emb.shape == (3, 4) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb, expected_embedding(reid_inputs([img], [boxes], m.spec)), atol=1e-5)
    assert np.abs(emb[0] - emb[1]).max() > 1e-3  # different crops, different embeddings
    assert m.embed_frame(img, np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_crops_of_several_frames_batch_together_and_in_runs(tmp_path: Path):
    path = colour_model(tmp_path / "m.onnx")
    frames = [_image() for _ in range(3)]
    corners = [RNG.uniform(0, 40, (n, 2)) for n in (5, 0, 7)]
    boxes = [np.c_[xy, xy + np.array([15.0, 20.0])].astype(np.float32) for xy in corners]
    one = load_reid_model(path)
    each = [one.embed_frame(f, b) for f, b in zip(frames, boxes, strict=True)]
    for max_batch in (1, 3, 64):
        got = load_reid_model(path, max_batch=max_batch).embed(frames, boxes)
        assert [g.shape for g in got] == [(5, 4), (0, 4), (7, 4)]
        for g, e in zip(got, each, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-6)
    fixed = load_reid_model(colour_model(tmp_path / "b1.onnx", batch=1))  # a model exported with batch 1
    assert fixed.max_batch == 1
    for g, e in zip(fixed.embed(frames, boxes), each, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)
    b4 = load_reid_model(colour_model(tmp_path / "b4.onnx", batch=4))  # fixed batch 4: padded runs
    for g, e in zip(b4.embed(frames, boxes), each, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)


def test_unusable_models_are_refused_at_load(tmp_path: Path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_reid_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(WeightsError, match="cannot be loaded"):
        load_reid_model(junk)
    with pytest.raises(WeightsError, match="non-finite"):
        load_reid_model(colour_model(tmp_path / "nan.onnx", nan=True))
    with pytest.raises(WeightsError, match="2 inputs"):
        load_reid_model(colour_model(tmp_path / "two.onnx", two_inputs=True))
    with pytest.raises(ConfigError, match="max batch"):
        load_reid_model(colour_model(tmp_path / "m.onnx"), max_batch=0)


# ------------------------------------------------------------------------------------------------- OSNet
@pytest.fixture(scope="module")
def osnet(shared_dir: Path):
    path = shared_dir / "models" / "osnet_x0_25_msmt17.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared ReID model is absent")
    return load_reid_model(path)


def test_osnet_spec_from_its_input_and_batch_invariance(osnet, pets_sequence: Path):
    import cv2

    assert (osnet.spec.height, osnet.spec.width, osnet.embed_dim) == (256, 128, 512)
    assert osnet.spec_origin["height"] == "model input" and osnet.spec.channels == "rgb"
    gt = np.loadtxt(pets_sequence / "gt" / "gt.txt", delimiter=",")
    frames, boxes = [], []
    for f in (1, 2):
        rows = gt[gt[:, 0] == f]
        xyxy = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]].astype(np.float32)
        frames.append(cv2.imread(str(pets_sequence / "img1" / f"{f:06d}.jpg"))[:, :, ::-1].copy())
        boxes.append(xyxy)
    batched = osnet.embed(frames, boxes)
    # the server batches crops of several streams; eval-mot embeds frame by frame: the same numbers
    for f, b, e in zip(frames, boxes, batched, strict=True):
        np.testing.assert_array_equal(osnet.embed_frame(f, b), e)
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_osnet_tells_people_apart_across_frames(osnet, pets_sequence: Path):
    """A real ReID model on our crops: the same person 10 frames later is nearer than anyone else (Top-1)."""
    import cv2

    gt = np.loadtxt(pets_sequence / "gt" / "gt.txt", delimiter=",")
    hits = total = 0
    for f in (50, 150, 250):
        sets = []
        for g in (f, f + 10):
            rows = gt[(gt[:, 0] == g) & (gt[:, 6] > 0)]
            xyxy = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]].astype(np.float32)
            img = cv2.imread(str(pets_sequence / "img1" / f"{g:06d}.jpg"))[:, :, ::-1].copy()
            sets.append((rows[:, 1].astype(int), osnet.embed_frame(img, xyxy)))
        (ids_a, ea), (ids_b, eb) = sets
        sim = eb @ ea.T
        for q, qid in enumerate(ids_b):
            if qid in ids_a:
                total += 1
                hits += int(ids_a[int(np.argmax(sim[q]))] == qid)
    assert total >= 12 and hits / total >= 0.8, (hits, total)
