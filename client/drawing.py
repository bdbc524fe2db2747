"""Draw tracks on frames: a box and ID per track, in a colour fixed by the ID, and a fading trail of its centre."""

from __future__ import annotations

from collections import defaultdict, deque

import cv2
import numpy as np


def id_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour for a track ID."""
    h = (track_id * 47) % 180
    hsv = np.array([[[h, 220, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class TrackPainter:
    """Keeps each track's recent centres; :meth:`draw` paints one frame's tracks (in place, BGR)."""

    def __init__(self, trail: int = 30) -> None:
        self.trails: dict[int, deque[tuple[int, int]]] = defaultdict(lambda: deque(maxlen=trail))

    def draw(
        self, bgr: np.ndarray, tracks: list[tuple[int, np.ndarray, bool]], caption: str = ""
    ) -> np.ndarray:
        """``tracks``: ``(track_id, box xyxy, lost)``. Lost tracks are drawn thin and dashed-looking."""
        for tid, box, lost in tracks:
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            color = id_color(tid)
            self.trails[tid].append(((x1 + x2) // 2, y2))
            pts = list(self.trails[tid])
            for k in range(1, len(pts)):
                cv2.line(bgr, pts[k - 1], pts[k], color, 1 + (2 * k) // max(1, len(pts)), cv2.LINE_AA)
            cv2.rectangle(bgr, (x1, y1), (x2, y2), color, 1 if lost else 2, cv2.LINE_AA)
            label = f"{tid}" + ("?" if lost else "")
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            cv2.rectangle(bgr, (x1, max(0, y1 - th - 4)), (x1 + tw + 4, y1), color, -1)
            cv2.putText(
                bgr, label, (x1 + 2, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
            )
        if caption:
            cv2.putText(
                bgr, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
            )
        return bgr


class VideoWriter:
    """``cv2.VideoWriter`` (mp4v) opened on the first frame's size."""

    def __init__(self, path: str, fps: float) -> None:
        self.path = path
        self.fps = fps if fps > 0 else 10.0
        self._w: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        if self._w is None:
            h, w = bgr.shape[:2]
            self._w = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self._w.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self._w.write(bgr)
        self.frames += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
