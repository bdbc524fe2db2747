"""Training/validation inputs: videos, image folders and MOTChallenge sequences.

For training, identities are never read: a MOTChallenge sequence contributes its frames and, when present, its
``det/det.txt`` public detections. ``read_gt`` exists for validation only.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import ScoreRule
from tracker_core.evaluation.mot_io import read_detections as read_mot_detections

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is ``"mot"``, ``"images"`` or ``"video"``."""

    path: Path
    kind: str
    name: str
    frame_rate: float = 7.0

    @property
    def det_file(self) -> Path | None:
        p = self.path / "det" / "det.txt"
        return p if self.kind == "mot" and p.is_file() else None


def _read_fps(seqinfo: Path) -> float:
    cp = configparser.ConfigParser()
    cp.read(seqinfo)
    try:
        return float(cp["Sequence"]["frameRate"])
    except (KeyError, ValueError):
        return 7.0


def open_source(path: str | Path) -> Source:
    """Classify ``path`` as a MOTChallenge sequence (has ``img1/``), image folder or video file."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"training input {p} does not exist")
    if p.is_dir():
        if (p / "img1").is_dir():
            fps = _read_fps(p / "seqinfo.ini") if (p / "seqinfo.ini").is_file() else 7.0
            return Source(p, "mot", p.name, fps)
        if any(f.suffix.lower() in IMAGE_EXTS for f in p.iterdir()):
            return Source(p, "images", p.name)
        raise InvalidInputError(f"{p} is neither a MOTChallenge sequence (img1/) nor a folder of images")
    if p.suffix.lower() in VIDEO_EXTS:
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise InvalidInputError(f"cannot open video {p}")
        fps = cap.get(cv2.CAP_PROP_FPS) or 7.0
        cap.release()
        return Source(p, "video", p.stem, float(fps))
    raise InvalidInputError(
        f"{p}: unsupported input (want a video {VIDEO_EXTS}, an image folder or a MOT sequence)"
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"cannot decode image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_frames(src: Source, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, RGB uint8 HxWx3)`` from frame ``start`` on; indices are 1-based like MOTChallenge."""
    if src.kind in ("mot", "images"):
        files = _image_files(src.path / "img1" if src.kind == "mot" else src.path)
        for i, f in enumerate(files[start:], start=start + 1):
            yield i, read_rgb(f)
        return
    cap = cv2.VideoCapture(str(src.path))
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        i = start
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            i += 1
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def frame_shape(src: Source) -> tuple[int, int]:
    """``(height, width)`` of the source's first frame."""
    for _, img in iter_frames(src):
        return int(img.shape[0]), int(img.shape[1])
    raise InvalidInputError(f"{src.path} has no frames")


def count_frames(src: Source) -> int:
    if src.kind == "mot":
        return len(_image_files(src.path / "img1"))
    if src.kind == "images":
        return len(_image_files(src.path))
    cap = cv2.VideoCapture(str(src.path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def read_mot_boxes(path: Path, score_col: int | None) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``frame -> (boxes [N,4] xyxy, second column [N] (id or -1), scores [N])`` from a MOTChallenge text file."""
    try:
        raw = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: not a MOTChallenge CSV: {exc}") from exc
    if raw.size == 0:
        return {}
    if raw.shape[1] < 6:
        raise InvalidInputError(f"{path}: need at least 6 columns frame,id,left,top,width,height")
    out = {}
    for f in np.unique(raw[:, 0]).astype(int):
        rows = raw[raw[:, 0] == f]
        xyxy = np.stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1
        ).astype(np.float32)
        scores = (
            rows[:, score_col].astype(np.float32) if score_col is not None else np.ones(len(rows), np.float32)
        )
        out[int(f)] = (xyxy, rows[:, 1].astype(np.int64), scores)
    return out


def read_detections(
    src: Source, score_rule: ScoreRule | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Public detections ``frame -> (boxes xyxy, scores in [0,1])`` from ``det/det.txt``; None if absent.

    Read by the one detection reader of every command (``tracker_core.evaluation.read_detections``), scores by
    ``score_rule`` (``--score-scale`` / ``--score-clip``; PETS09's 0..139 ACF scores: ``--score-scale max
    --score-clip``). Zero-size boxes are dropped.
    """
    if src.det_file is None:
        return None
    rule = score_rule or ScoreRule()
    frames = read_mot_detections(
        src.det_file, count_frames(src), "max" if rule.by_max else rule.scale, score_clip=rule.clip
    )
    return {i + 1: (fd.boxes, fd.scores) for i, fd in enumerate(frames) if len(fd.scores)}


def read_gt(seq: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Validation only: ``frame -> (boxes xyxy, identities)`` of scored ground-truth rows (flag column = 1)."""
    gt = seq / "gt" / "gt.txt"
    if not gt.is_file():
        raise NotFoundError(f"{seq} has no gt/gt.txt (needed for validation)")
    raw = np.loadtxt(gt, delimiter=",", ndmin=2, dtype=np.float64)
    if raw.shape[1] >= 7:
        raw = raw[raw[:, 6] == 1]
    out = {}
    for f in np.unique(raw[:, 0]).astype(int):
        rows = raw[raw[:, 0] == f]
        xyxy = np.stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1
        ).astype(np.float32)
        out[int(f)] = (xyxy, rows[:, 1].astype(np.int64))
    return out


def mot_frame_path(seq: Path, frame: int) -> Path:
    files = _image_files(seq / "img1")
    if not 1 <= frame <= len(files):
        raise NotFoundError(f"{seq} has no frame {frame}")
    return files[frame - 1]
