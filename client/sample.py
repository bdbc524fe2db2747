"""A small synthetic street scene in MOTChallenge layout, for the demo and tests (no data to download).

People walk across a street at different depths, cross and occlude each other, a car passes in front of them,
one person leaves the frame and comes back (same identity), another walks towards the camera and grows. The
sequence comes with exact ground truth and with *imperfect* detections: misses (more of them under occlusion),
box jitter, score noise and false positives, like a real detector's output::

    <out>/<name>/seqinfo.ini
    <out>/<name>/img1/000001.jpg ...
    <out>/<name>/gt/gt.txt      frame,id,left,top,width,height,1,-1,-1,-1  (MOT15 style, all rows scored)
    <out>/<name>/det/det.txt    frame,-1,left,top,width,height,score,-1,-1,-1  (score in [0, 1])

Deterministic for a given seed. NumPy + OpenCV only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError

HORIZON = 0.375  # fraction of the height where the street starts


@dataclass(frozen=True)
class Actor:
    """An object following keyframes ``(frame, x_centre, y_bottom)`` (fractions of width/height); it exists only
    during its segments (a gap between segments: it is somewhere off screen)."""

    track_id: int
    kind: str  # "person" | "car"
    segments: tuple[tuple[tuple[float, float, float], ...], ...]
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]  # BGR: upper, lower

    def position(self, frame: int) -> tuple[float, float] | None:
        for seg in self.segments:
            if seg[0][0] <= frame <= seg[-1][0]:
                for (f0, x0, y0), (f1, x1, y1) in itertools.pairwise(seg):
                    if f0 <= frame <= f1:
                        a = (frame - f0) / max(1e-9, f1 - f0)
                        return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return None


def _actors(n_frames: int) -> list[Actor]:
    n = float(n_frames)

    def f(t: float) -> float:  # fraction of the sequence -> frame number
        return 1 + t * (n - 1)

    return [
        Actor(1, "person", (((f(0), -0.05, 0.84), (f(0.8), 1.05, 0.84)),), ((40, 40, 200), (60, 50, 40))),
        Actor(2, "person", (((f(0), 1.05, 0.79), (f(0.67), -0.05, 0.79)),), ((200, 120, 30), (40, 40, 40))),
        Actor(
            3,
            "person",
            (((f(0.05), 0.3, 0.63), (f(0.45), 1.06, 0.63)), ((f(0.66), 1.06, 0.65), (f(1.0), 0.6, 0.65))),
            ((40, 190, 220), (90, 60, 30)),
        ),
        Actor(
            4,
            "person",
            (((f(0), 0.18, 0.55), (f(0.5), 0.22, 0.56), (f(1.0), 0.17, 0.55)),),
            ((150, 60, 150), (30, 30, 30)),
        ),
        Actor(5, "person", (((f(0.2), 0.78, 0.42), (f(1.0), 0.74, 0.97)),), ((60, 170, 60), (50, 50, 90))),
        Actor(6, "car", (((f(0.25), -0.25, 0.72), (f(0.55), 1.25, 0.72)),), ((30, 30, 170), (20, 20, 20))),
        Actor(7, "person", (((f(0.5), -0.05, 0.9), (f(1.0), 0.55, 0.9)),), ((200, 200, 200), (120, 80, 40))),
        Actor(8, "person", (((f(0.4), 0.95, 0.7), (f(1.0), 0.1, 0.7)),), ((20, 120, 240), (70, 70, 70))),
    ]


def _size(kind: str, y_bottom: float, h: int) -> tuple[float, float]:
    """Width, height in pixels for an object whose feet are at ``y_bottom`` px (simple perspective)."""
    depth = max(0.05, (y_bottom / h - HORIZON) / (1 - HORIZON))  # 0 at the horizon, 1 at the bottom
    if kind == "car":
        hh = h * (0.1 + 0.22 * depth)
        return 2.3 * hh, hh
    hh = h * (0.1 + 0.3 * depth)
    return 0.38 * hh, hh


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    hz = int(h * HORIZON)
    img[:hz] = (150, 130, 110)
    x = 0
    while x < w:  # buildings with windows
        bw = int(rng.integers(w // 8, w // 4))
        top = int(rng.integers(0, hz // 2))
        color = tuple(int(c) for c in rng.integers(70, 160, 3))
        cv2.rectangle(img, (x, top), (x + bw, hz), color, -1)
        for wy in range(top + 6, hz - 8, 12):
            for wx in range(x + 4, x + bw - 6, 10):
                cv2.rectangle(img, (wx, wy), (wx + 4, wy + 6), (200, 220, 230), -1)
        x += bw + int(rng.integers(2, 8))
    img[hz : hz + h // 16] = (170, 170, 175)  # far sidewalk
    img[hz + h // 16 :] = (95, 95, 100)  # road
    ymid = int(h * 0.77)
    for lx in range(0, w, w // 8):
        cv2.rectangle(img, (lx, ymid), (lx + w // 16, ymid + 2), (220, 220, 220), -1)
    return img


def _draw(img: np.ndarray, a: Actor, box: np.ndarray, frame: int) -> None:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    upper, lower = a.colors
    if a.kind == "car":
        cv2.rectangle(img, (x1, y1 + (y2 - y1) // 3), (x2, y2 - (y2 - y1) // 6), upper, -1)
        cv2.rectangle(img, (x1 + (x2 - x1) // 5, y1), (x2 - (x2 - x1) // 5, y1 + (y2 - y1) // 3), upper, -1)
        cv2.rectangle(
            img,
            (x1 + (x2 - x1) // 4, y1 + 2),
            (x2 - (x2 - x1) // 4, y1 + (y2 - y1) // 3),
            (200, 180, 150),
            -1,
        )
        r = max(2, (y2 - y1) // 6)
        for cx in (x1 + (x2 - x1) // 5, x2 - (x2 - x1) // 5):
            cv2.circle(img, (cx, y2 - r), r, lower, -1)
        return
    hh = y2 - y1
    head = max(2, hh // 8)
    cx = (x1 + x2) // 2
    cv2.circle(img, (cx, y1 + head), head, (140, 170, 210), -1)
    cv2.rectangle(img, (x1, y1 + 2 * head), (x2, y1 + int(hh * 0.55)), upper, -1)
    stride = (frame // 3) % 2
    leg_w = max(1, (x2 - x1) // 3)
    for k, lx in enumerate((x1 + 1, x2 - leg_w - 1)):
        off = 2 if (k + stride) % 2 else 0
        cv2.rectangle(img, (lx + off - 1, y1 + int(hh * 0.55)), (lx + off + leg_w - 1, y2), lower, -1)


def render_sequence(
    n_frames: int = 150, width: int = 320, height: int = 240, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Frames (BGR), ground truth rows ``[frame,id,x,y,w,h,vis]`` and detection rows ``[frame,x,y,w,h,score]``."""
    if n_frames < 2 or width < 64 or height < 64:
        raise InvalidInputError(
            f"sample needs >= 2 frames and >= 64x64 pixels, got {n_frames} x {width}x{height}"
        )
    rng = np.random.default_rng(seed)
    bg = _background(width, height, rng)
    actors = _actors(n_frames)
    frames, gt_rows, det_rows = [], [], []
    for fr in range(1, n_frames + 1):
        img = bg.copy()
        placed = []
        for a in actors:
            pos = a.position(fr)
            if pos is None:
                continue
            xc, yb = pos[0] * width, pos[1] * height
            bw, bh = _size(a.kind, yb, height)
            placed.append((yb, a, np.array([xc - bw / 2, yb - bh, xc + bw / 2, yb], np.float64)))
        placed.sort(key=lambda p: p[0])  # far (small y) first, near objects drawn over them
        owner = np.zeros((height, width), np.int32)
        for _, a, box in placed:
            _draw(img, a, box, fr)
            x1, y1, x2, y2 = np.clip(np.round(box), 0, [width, height, width, height]).astype(int)
            owner[y1:y2, x1:x2] = a.track_id
        for _, a, box in placed:
            clipped = np.clip(box, 0, [width, height, width, height])
            area_full = (box[2] - box[0]) * (box[3] - box[1])
            cw, ch = clipped[2] - clipped[0], clipped[3] - clipped[1]
            if cw <= 1 or ch <= 1 or cw * ch < 0.4 * area_full:
                continue  # mostly outside the frame
            x1, y1, x2, y2 = np.round(clipped).astype(int)
            region = owner[y1:y2, x1:x2]
            vis = float((region == a.track_id).mean()) if region.size else 0.0
            if vis < 0.25:
                continue  # hidden behind others: not annotated
            gt_rows.append([fr, a.track_id, clipped[0], clipped[1], cw, ch, vis])
            miss = 0.06 + (0.5 if vis < 0.6 else 0.0)
            if rng.random() < miss:
                continue
            jit = rng.normal(0.0, 0.04, 4) * np.array([cw, ch, cw, ch])
            d = clipped + jit
            d = np.clip(d, 0, [width, height, width, height])
            if d[2] - d[0] < 2 or d[3] - d[1] < 2:
                continue
            score = float(np.clip(0.55 + 0.4 * vis + rng.normal(0, 0.08), 0.05, 0.99))
            det_rows.append([fr, d[0], d[1], d[2] - d[0], d[3] - d[1], score])
        for _ in range(rng.poisson(0.4)):  # false positives
            bw = float(rng.uniform(10, 40))
            bh = float(rng.uniform(20, 70))
            x = float(rng.uniform(0, width - bw))
            y = float(rng.uniform(height * HORIZON, height - bh))
            det_rows.append([fr, x, y, bw, bh, float(rng.uniform(0.2, 0.6))])
        noise = rng.normal(0, 3.0, img.shape)
        frames.append(np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8))
    return frames, np.array(gt_rows, np.float64), np.array(det_rows, np.float64)


def make_sample(
    out_dir: str | Path,
    name: str = "roitrack-sample",
    n_frames: int = 150,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    fps: int = 10,
    jpeg_quality: int = 90,
) -> Path:
    """Write the sequence in MOTChallenge layout; returns the sequence folder."""
    frames, gt, det = render_sequence(n_frames, width, height, seed)
    seq = Path(out_dir) / name
    (seq / "img1").mkdir(parents=True, exist_ok=True)
    (seq / "gt").mkdir(exist_ok=True)
    (seq / "det").mkdir(exist_ok=True)
    for i, img in enumerate(frames, start=1):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise OSError(f"cannot encode frame {i}")
        (seq / "img1" / f"{i:06d}.jpg").write_bytes(buf.tobytes())
    (seq / "gt" / "gt.txt").write_text(
        "".join(
            f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},1,-1,-1,-1\n" for r in gt
        )
    )
    (seq / "det" / "det.txt").write_text(
        "".join(
            f"{int(r[0])},-1,{r[1]:.2f},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.4f},-1,-1,-1\n" for r in det
        )
    )
    (seq / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={name}\nimDir=img1\nframeRate={fps}\nseqLength={n_frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n"
    )
    return seq
