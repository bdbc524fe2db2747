"""Validation pairs: ``--mot SEQDIR --gap K --stride S`` or ``--pairs DIR`` (``pre/`` and ``now/``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError, NotFoundError
from training.sources import IMAGE_EXTS, mot_frame_path, read_gt


@dataclass(frozen=True)
class FrameLabels:
    """One frame of a pair: its image file and labelled objects (``boxes`` ``[N,4]`` xyxy px, ``ids`` ``[N]``)."""

    image: Path
    boxes: np.ndarray
    ids: np.ndarray
    frame: int | None = None  # 1-based frame number in a MOTChallenge sequence


@dataclass(frozen=True)
class ValPair:
    """Gallery = ``pre`` (earlier frame), queries = ``now`` (later frame)."""

    name: str
    pre: FrameLabels
    now: FrameLabels


def mot_pairs(seq: str | Path, gap: int, stride: int) -> list[ValPair]:
    """Pairs ``(t, t+gap)`` for ``t = 1, 1+stride, ...`` with both frames in the sequence; ground-truth boxes."""
    seq = Path(seq)
    if gap < 1 or stride < 1:
        raise InvalidInputError(f"--gap and --stride must be >= 1, got {gap} and {stride}")
    if not (seq / "img1").is_dir():
        raise NotFoundError(f"{seq} is not a MOTChallenge sequence (no img1/)")
    gt = read_gt(seq)
    n = len([f for f in (seq / "img1").iterdir() if f.suffix.lower() in IMAGE_EXTS])
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    pairs = []
    for t in range(1, n - gap + 1, stride):
        a, b = gt.get(t, empty), gt.get(t + gap, empty)
        pairs.append(
            ValPair(
                name=f"{t}-{t + gap}",
                pre=FrameLabels(mot_frame_path(seq, t), a[0], a[1], t),
                now=FrameLabels(mot_frame_path(seq, t + gap), b[0], b[1], t + gap),
            )
        )
    if not pairs:
        raise InvalidInputError(f"{seq} has {n} frames: no pair with gap {gap}")
    return pairs


def _read_labels(path: Path, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = json.loads(path.read_text())
        anns = data["annotations"]
        boxes, ids = [], []
        for a in anns:
            bb = a["bbox"]
            cx, cy, bw, bh = (float(bb[k]) for k in ("cx", "cy", "w", "h"))
            boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
            ids.append(int(a["id"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path}: bad label file ({exc})") from exc
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidInputError(f"cannot decode image {path}")
    return img.shape[1], img.shape[0]


def dir_pairs(root: str | Path) -> list[ValPair]:
    """``DIR/pre/pic/N.jpg`` + ``DIR/pre/lable/N.json`` against ``DIR/now/...`` with the same ``N``.

    Labels: ``{"annotations": [{"id", "class_id", "bbox": {"cx","cy","w","h"}}]}`` normalised to the image.
    """
    root = Path(root)
    for sub in ("pre/pic", "pre/lable", "now/pic", "now/lable"):
        if not (root / sub).is_dir():
            raise NotFoundError(f"{root / sub} is missing (want pre/ and now/, each with pic/ and lable/)")
    pics = {p.stem: p for p in (root / "pre" / "pic").iterdir() if p.suffix.lower() in IMAGE_EXTS}
    now_pics = {p.stem: p for p in (root / "now" / "pic").iterdir() if p.suffix.lower() in IMAGE_EXTS}
    names = sorted(
        set(pics) & set(now_pics), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)
    )
    if not names:
        raise InvalidInputError(f"{root}: no image present in both pre/pic and now/pic")
    pairs = []
    for n in names:
        frames = []
        for side, pic in (("pre", pics[n]), ("now", now_pics[n])):
            w, h = _image_size(pic)
            boxes, ids = _read_labels(root / side / "lable" / f"{n}.json", w, h)
            frames.append(FrameLabels(pic, boxes, ids))
        pairs.append(ValPair(name=n, pre=frames[0], now=frames[1]))
    return pairs
