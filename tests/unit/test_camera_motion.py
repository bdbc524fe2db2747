"""Camera motion from frames (tracker_core.motion): the estimator against known motions, the on/off/auto policy,
and the synthetic pan's true camera motion (tracker_core.evaluation.synthetic_pan)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import read_camera_motion, read_gt
from tracker_core.evaluation.synthetic_pan import make_pan_sequence
from tracker_core.motion import CameraMotion, FlowEstimator, corner_motion, downscale_gray, to_original

W, H = 640, 480


def _texture(seed: int = 0, w: int = 1200, h: int = 900) -> np.ndarray:
    """A large textured background (blurred noise + shapes) to cut camera views from."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    for _ in range(150):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(
            img,
            (x, y),
            (x + int(rng.integers(5, 40)), y + int(rng.integers(5, 40))),
            tuple(int(c) for c in rng.integers(0, 255, 3)),
            -1,
        )
    return img


def _view(bg: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The camera's view: background pixels mapped by the affine ``m`` (background -> view)."""
    return cv2.warpAffine(bg, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _cam(ox: float, oy: float, k: float) -> np.ndarray:
    return np.array([[k, 0.0, -k * ox], [0.0, k, -k * oy]])


def _true_warp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """View ``a`` -> view ``b`` for background->view maps ``a`` and ``b``: ``b a^-1``."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (b3 @ np.linalg.inv(a3))[:2]


def _err_px(est: np.ndarray, true: np.ndarray) -> float:
    diff = np.hstack([np.eye(2) + est[:, :2] - true[:, :2], (est[:, 2] - true[:, 2])[:, None]])
    return corner_motion(diff, W, H)


def test_estimator_recovers_pan_and_zoom_in_original_pixels() -> None:
    bg = _texture()
    est = FlowEstimator()
    cams = [_cam(100, 80, 1.0), _cam(112.5, 74.0, 1.0), _cam(118.0, 70.0, 1.03), _cam(110.0, 77.0, 0.99)]
    assert est.estimate(downscale_gray(_view(bg, cams[0]))) is None  # no previous frame
    for a, b in itertools.pairwise(cams):
        warp = est.estimate(downscale_gray(_view(bg, b)))
        assert warp is not None
        assert _err_px(warp, _true_warp(a, b)) < 1.0  # within a pixel at the corners of a 640x480 frame


def test_detections_are_masked_so_a_moving_person_does_not_drive_the_estimate() -> None:
    """A large object moving against a static background: masking it keeps the estimate at no motion."""
    bg = _texture(1)
    cam = _cam(50, 50, 1.0)
    rng = np.random.default_rng(3)
    blob = rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)
    blob = cv2.GaussianBlur(blob, (0, 0), 1.5)
    boxes = []
    est_masked, est_blind = FlowEstimator(), FlowEstimator()
    warps_masked, warps_blind = [], []
    for i in range(4):
        img = _view(bg, cam).copy()
        x, y = 150 + 25 * i, 100
        img[y : y + 300, x : x + 260] = blob
        box = np.array([[x, y, x + 260, y + 300]], np.float32)
        boxes.append(box)
        g = downscale_gray(img)
        warps_masked.append(est_masked.estimate(g, box))
        warps_blind.append(est_blind.estimate(g, None))
    for w in warps_masked[1:]:
        assert w is not None and corner_motion(w, W, H) < 0.5
    assert corner_motion(warps_masked[2], W, H) <= corner_motion(warps_blind[2], W, H)


def test_to_original_scales_translation_and_keeps_zoom() -> None:
    small = np.array([[1.02, 0.0, 3.0], [0.0, 1.02, -1.5]])
    big = to_original(small, (4.0, 4.0))
    np.testing.assert_allclose(big[:, :2], small[:, :2])
    np.testing.assert_allclose(big[:, 2], [12.0, -6.0])
    aniso = to_original(np.array([[1.0, 0.1, 1.0], [0.0, 1.0, 1.0]]), (2.0, 4.0))
    # S A S^-1: the shear term scales by sx / sy
    np.testing.assert_allclose(aniso, [[1.0, 0.05, 2.0], [0.0, 1.0, 4.0]])


def test_policy_off_never_estimates_on_always_applies() -> None:
    bg = _texture(2)
    off, on = CameraMotion("off"), CameraMotion("on")
    for i in range(5):
        img = _view(bg, _cam(100 + 6 * i, 80, 1.0))
        assert off.update(img, None, i / 10) is None
        w = on.update(img, None, i / 10)
        if i:
            assert w is not None and abs(w[0, 2] + 6.0) < 0.3
    assert off.estimates == 0 and on.estimates == 5


def test_auto_applies_while_moving_and_probes_a_static_camera() -> None:
    bg = _texture(3)
    auto = CameraMotion("auto")
    fps = 10.0
    applied = []
    # 3 s static, 2 s panning 5 px/frame, 4 s static again
    xs = [100.0] * 30 + [100.0 + 5 * k for k in range(1, 21)] + [200.0] * 40
    for i, x in enumerate(xs):
        ts = i / fps
        img = _view(bg, _cam(x, 80, 1.0)) if auto.wants_frame(ts) else None
        applied.append(auto.update(img, None, ts))
    static_first = applied[:30]
    assert all(w is None for w in static_first)  # a static camera is tracked as with off
    # the pan starts at frame 30 while the camera is only probed (every probe_s = 5 frames): the probe that sees it
    # spans several frames and is not applied; from the frame after it on, every frame is estimated and applied
    first = next(i for i in range(30, 50) if auto.estimates and applied[i] is not None)
    assert first <= 30 + 6
    moving = applied[first:50]
    assert all(w is not None and abs(w[0, 2] + 5.0) < 0.3 for w in moving)
    assert auto.moving is False  # 4 s still > static_s: static again
    assert all(w is None for w in applied[-10:])
    # while static (after static_s) it only probes every probe_s: far fewer estimates than frames
    assert auto.estimates < len(xs) - 25


def test_bad_inputs_are_named_errors() -> None:
    with pytest.raises(InvalidInputError, match="on, off or auto"):
        CameraMotion("sometimes")
    with pytest.raises(InvalidInputError, match="uint8"):
        downscale_gray(np.zeros((10, 10), np.float32))


def _source_sequence(root: Path, n: int = 12) -> Path:
    """A small static MOTChallenge sequence (textured frames, two boxes walking) to pan over."""
    bg = _texture(5, 768, 576)
    (root / "img1").mkdir(parents=True)
    gt, det = [], []
    for f in range(1, n + 1):
        cv2.imwrite(str(root / "img1" / f"{f:06d}.jpg"), bg)
        for pid, (x, y) in enumerate(((200 + 4 * f, 200), (400, 150 + 3 * f)), 1):
            gt.append(f"{f},{pid},{x},{y},40,100,1,-1,-1,-1")
            det.append(f"{f},-1,{x + 1},{y},40,100,{50 + pid},-1,-1,-1")
    (root / "gt").mkdir()
    (root / "det").mkdir()
    (root / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (root / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname=src\nimDir=img1\nframeRate=10\nseqLength={n}\nimWidth=768\nimHeight=576\nimExt=.jpg\n"
    )
    return root


def test_synthetic_pan_gmc_moves_the_boxes_exactly(tmp_path: Path) -> None:
    src = _source_sequence(tmp_path / "src")
    out = make_pan_sequence(src, tmp_path / "pan", frames=12, out_size=(320, 240), seed=1)
    warps = read_camera_motion(out / "gmc.txt", 12)
    gt = read_gt(out / "gt" / "gt.txt")
    det = np.loadtxt(out / "det" / "det.txt", delimiter=",", ndmin=2)
    assert det[:, 6].max() <= 1.0  # the 0-100 source scores were scaled
    moved = 0
    for f in range(2, 13):
        w = warps[f - 1]
        assert w is not None and abs(w[0, 0] - w[1, 1]) < 1e-9  # pan + zoom
        prev = {int(r[1]): r for r in gt if r[0] == f - 1}
        cur = {int(r[1]): r for r in gt if r[0] == f}
        for pid in set(prev) & set(cur):
            p, c = prev[pid], cur[pid]
            if min(p[2], p[3], c[2], c[3]) <= 0.5 or p[2] + p[4] >= 319.5 or c[2] + c[4] >= 319.5:
                continue  # clipped at an edge
            # the source boxes moved (4, 0) / (0, 3) px per frame, i.e. k_t * that in the output
            k = w[0, 0] * 1.0
            centre_prev = np.array([p[2] + p[4] / 2, p[3] + p[5] / 2])
            centre_cur = np.array([c[2] + c[4] / 2, c[3] + c[5] / 2])
            predicted = w[:, :2] @ centre_prev + w[:, 2]
            own = centre_cur - predicted  # what is left is the person's own motion
            kt = c[4] / 40.0  # output px per source px in frame f
            assert np.allclose(
                own, (np.array([4.0, 0.0]) if pid == 1 else np.array([0.0, 3.0])) * kt, atol=0.05
            )
            assert k > 0
            moved += 1
    assert moved >= 10
    # a stronger pan than the people's own motion: the camera dominates
    assert max(corner_motion(w, 320, 240) for w in warps[1:] if w is not None) > 5.0
