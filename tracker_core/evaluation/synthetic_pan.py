"""A moving camera made from a static one: a panning, zooming window cut out of each frame of a sequence.

``make_pan_sequence(src, out, ...)`` crops a window from every frame of the MOTChallenge sequence ``src`` whose
centre follows a smooth path (two slow sinusoids) plus jerky components (a random step every few frames and a
per-frame shake) and whose size follows a slow zoom, resamples it to a fixed output size, and writes a new
sequence: ``img1/`` (JPEG), ``gt/gt.txt`` and ``det/det.txt`` moved with the window, and the true ``gmc.txt``
(``index a11 a12 tx a21 a22 ty``: the affine from frame ``index - 1``'s pixels to frame ``index``'s, identity for
index 0; BoT-SORT's convention, what ``eval-mot --gmc`` reads).

The window maps a source pixel ``p`` to ``k_t (p - o_t)`` (``o_t``: window origin, ``k_t``: output width / window
width), so frame ``t-1`` -> ``t`` is exactly ``q -> (k_t / k_{t-1}) q + k_t (o_{t-1} - o_t)``. Boxes are moved the
same way, clipped to the output frame, and dropped (gt and detections alike) when less than ``min_visible`` of
their area stays inside it. Detection scores are written in [0, 1] (``score_rule``: the source's scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import ScoreRule, read_seqinfo


@dataclass(frozen=True)
class PanPath:
    """The window's path per frame: origin ``o [T,2]`` (source pixels) and window width ``cw [T]``."""

    origin: NDArray[np.float64]
    width: NDArray[np.float64]


def pan_path(
    n: int,
    src_w: int,
    src_h: int,
    aspect: float,
    seed: int = 0,
    zoom: tuple[float, float] = (0.55, 0.8),
    speed: float = 1.0,
    jerk_px: float = 10.0,
    jerk_every: int = 7,
    shake_px: float = 1.5,
) -> PanPath:
    """A smooth + jerky window path of ``n`` frames inside a ``src_w x src_h`` frame. ``zoom``: the window width's
    range as a share of ``src_w``; ``speed`` scales the smooth pan; ``jerk_px`` is the size of a sudden step every
    ``jerk_every`` frames on average, ``shake_px`` the per-frame shake (source pixels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    lo, hi = zoom
    frac = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * t / max(n, 1) * 1.3 + 0.7))
    cw = frac * src_w
    ch = cw / aspect
    if (ch > src_h).any():
        cw = np.minimum(cw, src_h * aspect)
        ch = cw / aspect
    # centre: slow sinusoids over the free range + random steps + shake
    free_x, free_y = src_w - cw, src_h - ch
    phase = 2 * np.pi * t / max(n, 1) * speed
    cx = cw / 2 + free_x * (0.5 + 0.45 * np.sin(1.7 * phase))
    cy = ch / 2 + free_y * (0.5 + 0.45 * np.sin(1.1 * phase + 1.0))
    steps = (rng.random(n) < 1.0 / max(jerk_every, 1))[:, None] * rng.normal(0.0, jerk_px, (n, 2))
    walk = np.cumsum(steps, axis=0)
    walk -= np.linspace(0, 1, n)[:, None] * walk[-1]  # no drift: the steps cancel over the sequence
    shake = rng.normal(0.0, shake_px, (n, 2))
    ox = np.clip(cx + walk[:, 0] + shake[:, 0] - cw / 2, 0.0, free_x)
    oy = np.clip(cy + walk[:, 1] + shake[:, 1] - ch / 2, 0.0, free_y)
    return PanPath(np.stack([ox, oy], axis=1), cw)


def _move_rows(
    rows: NDArray[np.float64],
    origin: NDArray[np.float64],
    k: NDArray[np.float64],
    out_w: int,
    out_h: int,
    min_visible: float,
) -> NDArray[np.float64]:
    """MOT rows (1-based frames) moved into the output frames; clipped, rows mostly outside dropped."""
    if rows.shape[0] == 0:
        return rows
    f = rows[:, 0].astype(np.int64) - 1
    kk = k[f][:, None]
    x1 = (rows[:, 2:3] - origin[f, 0:1]) * kk
    y1 = (rows[:, 3:4] - origin[f, 1:2]) * kk
    x2 = x1 + rows[:, 4:5] * kk
    y2 = y1 + rows[:, 5:6] * kk
    area = (x2 - x1) * (y2 - y1)
    cx1, cy1 = np.clip(x1, 0, out_w), np.clip(y1, 0, out_h)
    cx2, cy2 = np.clip(x2, 0, out_w), np.clip(y2, 0, out_h)
    vis = ((cx2 - cx1) * (cy2 - cy1)) / np.maximum(area, 1e-9)
    keep = (vis[:, 0] >= min_visible) & (cx2[:, 0] - cx1[:, 0] >= 1) & (cy2[:, 0] - cy1[:, 0] >= 1)
    out = rows.copy()
    out[:, 2:3], out[:, 3:4] = cx1, cy1
    out[:, 4:5], out[:, 5:6] = cx2 - cx1, cy2 - cy1
    return out[keep]


def make_pan_sequence(
    src: str | Path,
    out: str | Path,
    *,
    frames: int | None = None,
    out_size: tuple[int, int] = (640, 480),
    seed: int = 0,
    zoom: tuple[float, float] = (0.55, 0.8),
    speed: float = 1.0,
    jerk_px: float = 10.0,
    shake_px: float = 1.5,
    min_visible: float = 0.5,
    score_rule: ScoreRule | None = None,
    jpeg_quality: int = 90,
) -> Path:
    """Write the panned sequence of the first ``frames`` frames of ``src`` to ``out`` (see the module docstring).
    ``score_rule``: how ``src``'s detection scores become [0, 1] (default: divide by 100 and clip when the file's
    largest score is above 1, as for PETS09's ACF scores). Returns ``out``."""
    import cv2

    src_p, out_p = Path(src), Path(out)
    info = read_seqinfo(src_p)
    n = info.seq_length if frames is None else int(frames)
    if not 2 <= n <= info.seq_length:
        raise InvalidInputError(f"--frames must be in 2..{info.seq_length}, got {n}")
    out_w, out_h = int(out_size[0]), int(out_size[1])
    if out_w < 32 or out_h < 32:
        raise InvalidInputError(f"output size must be at least 32x32, got {out_w}x{out_h}")
    if out_p.exists() and any(out_p.iterdir()):
        raise InvalidInputError(f"{out_p} exists and is not empty")
    first = cv2.imread(str(src_p / info.im_dir / f"{1:06d}{info.im_ext}"), cv2.IMREAD_COLOR)
    if first is None:
        raise NotFoundError(f"{src_p / info.im_dir} has no readable frame 1: the pan needs the images")
    src_h, src_w = first.shape[:2]
    path = pan_path(n, src_w, src_h, out_w / out_h, seed, zoom, speed, jerk_px, shake_px=shake_px)
    k = out_w / path.width
    (out_p / "img1").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = cv2.imread(str(src_p / info.im_dir / f"{i + 1:06d}{info.im_ext}"), cv2.IMREAD_COLOR)
        if img is None:
            raise NotFoundError(f"frame {i + 1} of {src_p} cannot be read")
        m = np.array([[k[i], 0.0, -k[i] * path.origin[i, 0]], [0.0, k[i], -k[i] * path.origin[i, 1]]])
        win = cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(out_p / "img1" / f"{i + 1:06d}.jpg"), win, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    # the true camera motion, frame t-1 -> t
    lines = ["0 1 0 0 0 1 0"]
    for i in range(1, n):
        r = k[i] / k[i - 1]
        tx, ty = k[i] * (path.origin[i - 1] - path.origin[i])
        lines.append(f"{i} {r:.9f} 0 {tx:.6f} 0 {r:.9f} {ty:.6f}")
    (out_p / "gmc.txt").write_text("\n".join(lines) + "\n")
    for sub in ("gt/gt.txt", "det/det.txt"):
        f = src_p / sub
        if not f.is_file():
            continue
        rows = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64)
        rows = rows[(rows[:, 0] >= 1) & (rows[:, 0] <= n)] if rows.size else rows.reshape(0, 10)
        if sub.startswith("det") and rows.shape[0]:
            rule = score_rule or (ScoreRule(100.0, True) if rows[:, 6].max() > 1.0 else ScoreRule())
            rows[:, 6] = rule.apply(rows[:, 6], str(f))
        moved = _move_rows(rows, path.origin, k, out_w, out_h, min_visible)
        (out_p / sub).parent.mkdir(parents=True, exist_ok=True)
        body = [
            f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
            + (f"{r[6]:.4f}" if sub.startswith("det") else f"{int(r[6])}")
            + ",-1,-1,-1"
            for r in moved
        ]
        (out_p / sub).write_text("\n".join(body) + ("\n" if body else ""))
    (out_p / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={info.name}-pan\nimDir=img1\nframeRate={info.frame_rate:g}\nseqLength={n}\n"
        f"imWidth={out_w}\nimHeight={out_h}\nimExt=.jpg\n"
    )
    return out_p
