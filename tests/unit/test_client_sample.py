"""The synthetic sample: deterministic, with occlusions, a leave-and-return, and imperfect detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from client.sample import make_sample, render_sequence


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh rows a [N,4] against b [M,4]."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, None, 2] * a[:, None, 3] + b[:, 2] * b[:, 3] - inter)


def test_scene_properties() -> None:
    frames, gt, det = render_sequence(n_frames=150, seed=0)
    assert len(frames) == 150 and frames[0].shape == (240, 320, 3)
    ids = np.unique(gt[:, 1]).astype(int)
    assert list(ids) == list(range(1, 9))
    # object 3 leaves the frame and comes back under the same identity
    f3 = np.sort(gt[gt[:, 1] == 3, 0])
    assert np.diff(f3).max() > 10
    # some objects are partly hidden by others
    assert (gt[:, 6] < 0.9).sum() > 20
    # objects leave: not every id is present in every frame
    assert len(np.unique(gt[gt[:, 0] == 1, 1])) < 8
    # detections: misses, jitter, false positives
    matched, missed, fps, jitter = 0, 0, 0, []
    for f in range(1, 151):
        g = gt[gt[:, 0] == f][:, 2:6]
        d = det[det[:, 0] == f][:, 1:5]
        if len(g) and len(d):
            iou = _iou(g, d)
            best = iou.max(axis=1)
            matched += int((best > 0.5).sum())
            missed += int((best <= 0.5).sum())
            fps += int((iou.max(axis=0) < 0.3).sum())
            jitter += list(1 - best[best > 0.5])
        else:
            missed += len(g)
            fps += len(d)
    assert matched > 0.75 * len(gt)
    assert missed > 0.03 * len(gt)
    assert fps >= 20
    assert np.mean(jitter) > 0.02  # boxes are not copies of the ground truth
    assert ((det[:, 5] > 0) & (det[:, 5] < 1)).all()


def test_deterministic_and_layout(tmp_path: Path) -> None:
    a = make_sample(tmp_path / "a", n_frames=12)
    b = make_sample(tmp_path / "b", n_frames=12)
    assert (a / "gt" / "gt.txt").read_text() == (b / "gt" / "gt.txt").read_text()
    assert (a / "det" / "det.txt").read_text() == (b / "det" / "det.txt").read_text()
    assert sorted(p.name for p in (a / "img1").iterdir())[:2] == ["000001.jpg", "000002.jpg"]
    assert len(list((a / "img1").iterdir())) == 12
    info = (a / "seqinfo.ini").read_text()
    assert "seqLength=12" in info and "frameRate=10" in info and "imWidth=320" in info
    row = (a / "gt" / "gt.txt").read_text().splitlines()[0].split(",")
    assert len(row) == 10 and row[6] == "1" and row[7:] == ["-1", "-1", "-1"]
    c = make_sample(tmp_path / "c", n_frames=12, seed=1)
    assert (c / "det" / "det.txt").read_text() != (a / "det" / "det.txt").read_text()
