"""Training images: mosaic, random affine (scale, translation, rotation, shear), HSV jitter, left-right flip.

The augmentations that matter for YOLOv7 (official ``utils/datasets.py``, ``hyp.scratch.tiny.yaml``), written
here from their description:

- every image is first resized so its long side is ``size`` (aspect kept, ``cv2.INTER_LINEAR``, as the
  letterbox the server applies);
- the output is ``H x W``: ``size x size``, or with the **rectangular letterbox** the frames' aspect at that
  scale rounded up to multiples of 32 (768x576 frames: 480x640; a quarter less compute than the square, and the
  square's padding holds nothing to learn);
- **mosaic**: four images (the sample and three random others) around a random centre of a ``2H x 2W`` canvas
  filled with 114, each cut at the canvas edge (its boxes clipped there; one left with less than half of
  itself becomes an ignore region);
- **random affine** of the canvas to the ``H x W`` output: scale ``1 +- scale``, translation ``+- translate`` of
  the output sides, rotation ``+- degrees``, shear ``+- shear``; the output window is the canvas centre, so a
  mosaic's seam falls anywhere. Without mosaic the sample is letterboxed to ``H x W`` as served
  (:func:`tracker_core.letterbox.letterbox`) and gets the same affine;
- boxes move with the image (their 4 corners, then the enclosing box), are clipped to it, and are kept when at
  least 2 px wide and high, with more than 10 % of their transformed area inside and an aspect below 20. A box
  that is cut away further but still shows is turned into an **ignore region** (not taught as background);
- **HSV**: hue, saturation and value gains ``1 + U(-1, 1) * (h, s, v)`` through lookup tables;
- **flip** left-right with probability ``fliplr``.

Boxes are ``xyxy`` pixels of the image they belong to; a sample is ``(image [H,W,3] uint8 RGB, classes [N],
boxes [N,4], ignore [M,4])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracker_core.letterbox import PAD_VALUE, letterbox

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class AugmentConfig:
    size: int = 640  # long side every image is resized to
    shape: tuple[int, int] = (640, 640)  # output (H, W)
    mosaic: float = 1.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    fliplr: float = 0.5


@dataclass
class Sample:
    image: NDArray[np.uint8]  # [H,W,3] RGB
    classes: NDArray[np.int64]  # [N]
    boxes: F32  # [N,4] xyxy px of image
    ignore: F32  # [M,4]


@dataclass(frozen=True)
class Resized:
    """One source image resized to long side ``size`` with its labels in the resized pixels."""

    image: NDArray[np.uint8]
    classes: NDArray[np.int64]
    boxes: F32
    ignore: F32


def resize_long_side(image: NDArray[np.uint8], size: int) -> tuple[NDArray[np.uint8], float]:
    """``image`` with its long side ``size`` (aspect kept; each side at least 1 px) and the ratio applied."""
    h, w = image.shape[:2]
    r = size / max(h, w)
    if r == 1:
        return image, 1.0
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    out = np.asarray(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR), np.uint8)
    return out, r


def _empty() -> F32:
    return np.zeros((0, 4), np.float32)


def mosaic4(items: list[Resized], shape: tuple[int, int], rng: np.random.Generator) -> Sample:
    """Four resized images around a random centre of a ``2H x 2W`` canvas (labels shifted with them)."""
    sh, sw = shape
    canvas = np.full((2 * sh, 2 * sw, 3), PAD_VALUE, np.uint8)
    yc, xc = int(rng.uniform(sh / 2, 3 * sh / 2)), int(rng.uniform(sw / 2, 3 * sw / 2))
    classes, boxes, ignore = [], [], []
    for k, it in enumerate(items[:4]):
        h, w = it.image.shape[:2]
        if k == 0:  # top left: its bottom-right corner at the centre
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif k == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * sw), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif k == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * sh, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * sw), min(2 * sh, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        canvas[y1a:y2a, x1a:x2a] = it.image[y1b:y2b, x1b:x2b]
        shift = np.array([x1a - x1b, y1a - y1b] * 2, np.float32)
        classes.append(it.classes)
        boxes.append(it.boxes + shift)
        ignore.append(it.ignore + shift)
    # what an image lost at the canvas edge does not exist: clip to the canvas; a box left with less than
    # half of itself is no longer a whole object to teach (an ignore region), as after the affine
    b = np.concatenate(boxes).reshape(-1, 4).astype(np.float32)
    lim = np.array([2 * sw, 2 * sh, 2 * sw, 2 * sh], np.float32)
    clipped = np.clip(b, 0, lim)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    seen = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    whole = seen >= 0.5 * area
    part = ~whole & (clipped[:, 2] - clipped[:, 0] > 1) & (clipped[:, 3] - clipped[:, 1] > 1)
    ign = np.clip(np.concatenate(ignore).reshape(-1, 4).astype(np.float32), 0, lim)
    ign = ign[(ign[:, 2] - ign[:, 0] > 1) & (ign[:, 3] - ign[:, 1] > 1)]
    return Sample(
        canvas,
        np.concatenate(classes).astype(np.int64)[whole],
        clipped[whole],
        np.concatenate([ign, clipped[part]]).reshape(-1, 4),
    )


def affine_matrix(
    in_hw: tuple[int, int], out_hw: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator
) -> NDArray[np.float64]:
    """The random ``2x3`` map from an ``in_hw`` canvas to the ``out_hw`` output (centre, rotate/scale, shear,
    translate)."""
    h, w = in_hw
    c = np.eye(3)
    c[0, 2], c[1, 2] = -w / 2, -h / 2  # canvas centre to the origin
    r = np.eye(3)
    angle = rng.uniform(-cfg.degrees, cfg.degrees)
    sc = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    r[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=sc)
    sh = np.eye(3)
    sh[0, 1] = math.tan(rng.uniform(-cfg.shear, cfg.shear) * math.pi / 180)
    sh[1, 0] = math.tan(rng.uniform(-cfg.shear, cfg.shear) * math.pi / 180)
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * out_hw[1]
    t[1, 2] = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * out_hw[0]
    return (t @ sh @ r @ c)[:2]


def transform_boxes(boxes: F32, m: NDArray[np.float64], out_hw: tuple[int, int]) -> tuple[F32, F32]:
    """``(clipped boxes, unclipped boxes)`` after the affine ``m`` (enclosing box of the 4 moved corners)."""
    n = len(boxes)
    if n == 0:
        return _empty(), _empty()
    pts = np.ones((n * 4, 3))
    pts[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    xy = (pts @ m.T).reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    raw = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], axis=1).astype(np.float32)
    out = raw.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, out_hw[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, out_hw[0])
    return out, raw


def box_keep(
    before: F32, after: F32, scale: float, wh_thr: float = 2, area_thr: float = 0.1, ar_thr: float = 20
) -> NDArray[np.bool_]:
    """Boxes worth teaching after augmentation: ``>= wh_thr`` px each side, more than ``area_thr`` of their
    scaled area left, aspect below ``ar_thr``."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 * scale + 1e-16) > area_thr) & (ar < ar_thr)


def random_affine(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Warp ``sample`` (any canvas size) to ``cfg.shape`` with a random affine; labels follow."""
    s = cfg.shape
    m = affine_matrix(sample.image.shape[:2], s, cfg, rng)
    img = np.asarray(
        cv2.warpAffine(sample.image, m, dsize=(s[1], s[0]), borderValue=(PAD_VALUE,) * 3), np.uint8
    )
    scale = float(abs(np.linalg.det(m[:, :2])))  # area scale
    boxes, _ = transform_boxes(sample.boxes, m, s)
    keep = box_keep(sample.boxes, boxes, scale) if len(boxes) else np.zeros(0, bool)
    visible = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1) if len(boxes) else keep
    ign, _ = transform_boxes(sample.ignore, m, s)
    ign_ok = (ign[:, 2] - ign[:, 0] > 1) & (ign[:, 3] - ign[:, 1] > 1) if len(ign) else np.zeros(0, bool)
    ignore = np.concatenate([ign[ign_ok], boxes[visible & ~keep]]).reshape(-1, 4).astype(np.float32)
    return Sample(img, sample.classes[keep], boxes[keep], ignore)


def augment_hsv(image: NDArray[np.uint8], cfg: AugmentConfig, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Random hue / saturation / value gains (``1 + U(-1,1) * gain``) applied through lookup tables."""
    if not (cfg.hsv_h or cfg.hsv_s or cfg.hsv_v):
        return image
    r = rng.uniform(-1, 1, 3) * np.array([cfg.hsv_h, cfg.hsv_s, cfg.hsv_v]) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    out = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), np.uint8)
    return out


def flip_lr(sample: Sample) -> Sample:
    w = sample.image.shape[1]

    def flip(b: F32) -> F32:
        out = b.copy()
        out[:, 0], out[:, 2] = w - b[:, 2], w - b[:, 0]
        return out

    return Sample(
        np.ascontiguousarray(sample.image[:, ::-1]), sample.classes, flip(sample.boxes), flip(sample.ignore)
    )


def letterboxed(item: Resized, shape: tuple[int, int]) -> Sample:
    """The resized image letterboxed to ``shape`` ``(H, W)`` as served, labels mapped with it."""
    img, t = letterbox(item.image, shape)
    off = np.array([t.pad_left, t.pad_top] * 2, np.float32)
    sc = np.float32(t.scale)
    return Sample(img, item.classes, item.boxes * sc + off, item.ignore * sc + off)


def make_sample(
    items: list[Resized], cfg: AugmentConfig, rng: np.random.Generator, use_mosaic: bool
) -> Sample:
    """One training image from ``items`` (the sample first, then three mosaic partners)."""
    base = mosaic4(items, cfg.shape, rng) if use_mosaic else letterboxed(items[0], cfg.shape)
    out = random_affine(base, cfg, rng)
    out.image = augment_hsv(out.image, cfg, rng)
    if rng.random() < cfg.fliplr:
        out = flip_lr(out)
    return out
