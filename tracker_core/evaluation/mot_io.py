"""MOTChallenge files: ``seqinfo.ini``, detections (``det.txt``), ground truth and results.

Rows are ``frame,id,left,top,width,height,score,...`` (1-based frames, top-left/size boxes). Inside roitrack
boxes are ``xyxy``; the conversion happens here, at the edge.

MOT15 (e.g. PETS09-S2L1) uses columns 8-10 for world coordinates, not class/visibility as in MOT17; results
we write always carry ``-1`` there so TrackEval never reads them as a class.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError


@dataclass(frozen=True)
class SeqInfo:
    """``seqinfo.ini`` of a MOTChallenge sequence folder."""

    name: str
    frame_rate: float
    seq_length: int
    im_width: int
    im_height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections: ``boxes [N,4]`` xyxy float32 pixels, ``scores [N]`` float32."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]


def read_seqinfo(seq_dir: str | Path) -> SeqInfo:
    """Parse ``seq_dir/seqinfo.ini``; ``NotFoundError`` / ``InvalidInputError`` when missing or malformed."""
    path = Path(seq_dir) / "seqinfo.ini"
    if not path.is_file():
        raise NotFoundError(f"{path} not found: --seq must be a MOTChallenge sequence folder")
    ini = configparser.ConfigParser()
    try:
        ini.read(path)
        sec = ini["Sequence"]
        info = SeqInfo(
            name=sec.get("name", Path(seq_dir).name),
            frame_rate=float(sec["frameRate"]),
            seq_length=int(sec["seqLength"]),
            im_width=int(sec.get("imWidth", "0")),
            im_height=int(sec.get("imHeight", "0")),
            im_dir=sec.get("imDir", "img1"),
            im_ext=sec.get("imExt", ".jpg"),
        )
    except (KeyError, ValueError, configparser.Error) as exc:
        raise InvalidInputError(f"{path} is malformed: {exc}") from None
    if info.frame_rate <= 0 or info.seq_length <= 0:
        raise InvalidInputError(f"{path}: frameRate and seqLength must be > 0")
    return info


def _load_rows(path: Path, min_cols: int) -> NDArray[np.float64]:
    if not path.is_file():
        raise NotFoundError(f"{path} not found")
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InvalidInputError(f"{path} is not a MOTChallenge CSV file: {exc}") from None
    if data.size == 0:
        return np.zeros((0, max(min_cols, 10)))
    if data.shape[1] < min_cols:
        raise InvalidInputError(f"{path}: expected at least {min_cols} columns, got {data.shape[1]}")
    if not np.isfinite(data[:, :min_cols]).all():
        raise InvalidInputError(f"{path}: non-finite values")
    return data


@dataclass(frozen=True)
class ScoreRule:
    """How a ``det.txt``'s score column becomes scores in [0, 1] - the one rule every command uses.

    Scores are divided by ``scale`` (``--score-scale``: 1 for files already in [0, 1], 100 for MOT15's 0..100
    public detections), or with ``by_max`` (``--score-scale max``) by the file's largest score. A score still
    outside [0, 1] is an error naming the flag, unless ``clip`` (``--score-clip``) asks for clipping to [0, 1] on
    purpose (the PETS09 ACF detections reach 138.9 and dip below 0). Nothing is guessed from the data.
    """

    scale: float = 1.0
    clip: bool = False
    by_max: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise InvalidInputError(f"--score-scale must be a finite number > 0 or 'max', got {self.scale}")

    @classmethod
    def from_flags(cls, scale: float | str = 1.0, clip: bool = False) -> ScoreRule:
        """``--score-scale`` (a number, or ``max``) and ``--score-clip``."""
        if isinstance(scale, str) and scale.strip().lower() == "max":
            return cls(1.0, clip, by_max=True)
        try:
            value = float(scale)
        except ValueError:
            raise InvalidInputError(f"--score-scale must be a number > 0 or 'max', got {scale!r}") from None
        return cls(value, clip)

    def describe(self) -> str:
        """The flags that give this rule, e.g. ``--score-scale 100 --score-clip``."""
        scale = "max" if self.by_max else f"{self.scale:g}"
        return f"--score-scale {scale}" + (" --score-clip" if self.clip else "")

    def apply(self, raw: NDArray[np.floating], source: str) -> NDArray[np.float32]:
        """Scaled scores as float32 in [0, 1]; ``InvalidInputError`` for scores outside it (unless ``clip``)."""
        raw = np.asarray(raw, dtype=np.float64)
        divisor = self.scale
        if self.by_max and len(raw):
            divisor = float(raw.max())
            if not divisor > 0:
                raise InvalidInputError(
                    f"{source}: --score-scale max needs a positive largest score, got {divisor}"
                )
        scores = raw / divisor
        if self.clip:
            return np.clip(scores, 0.0, 1.0).astype(np.float32)
        bad = ~((scores >= 0.0) & (scores <= 1.0))
        if bad.any():
            by = f"max ({divisor:g})" if self.by_max else f"{divisor:g}"
            raise InvalidInputError(
                f"{source}: {int(bad.sum())} of {len(scores)} detection scores fall outside [0, 1] after dividing "
                f"by --score-scale {by} (they range {float(scores.min()):.4g}..{float(scores.max()):.4g});"
                " give the scale the file was written with (100 for MOT15's 0..100 scores), or --score-clip to "
                "clip them to [0, 1] on purpose"
            )
        return scores.astype(np.float32)


def read_detections(
    path: str | Path,
    seq_length: int,
    score_scale: float | str = 1.0,
    min_score: float = -np.inf,
    score_clip: bool = False,
) -> list[FrameDetections]:
    """Detections per frame (index 0 = frame 1) from a ``det.txt`` - the one reader of detection files.

    Scores follow :class:`ScoreRule` (``score_scale``: a number or ``"max"``; ``score_clip``); rows scoring below ``min_score`` (after
    scaling) and boxes of zero or negative size are dropped. Frames outside ``1..seq_length`` are an error.
    """
    rule = ScoreRule.from_flags(score_scale, score_clip)
    data = _load_rows(Path(path), 7)
    frames = data[:, 0].astype(np.int64)
    if data.shape[0] and (frames.min() < 1 or frames.max() > seq_length):
        raise InvalidInputError(f"{path}: frame numbers must be in 1..{seq_length}")
    scores = rule.apply(data[:, 6], str(path))
    keep = (scores >= min_score) & (data[:, 4] > 0) & (data[:, 5] > 0)
    data, frames, scores = data[keep], frames[keep], scores[keep]
    xyxy = np.concatenate([data[:, 2:4], data[:, 2:4] + data[:, 4:6]], axis=1).astype(np.float32)
    order = np.argsort(frames, kind="stable")
    frames, xyxy, scores = frames[order], xyxy[order], scores[order]
    bounds = np.searchsorted(frames, np.arange(1, seq_length + 2))
    return [
        FrameDetections(xyxy[bounds[i] : bounds[i + 1]], scores[bounds[i] : bounds[i + 1]])
        for i in range(seq_length)
    ]


def read_gt(path: str | Path) -> NDArray[np.float64]:
    """Ground-truth rows ``[M,>=7]`` (frame, id, left, top, width, height, flag, ...)."""
    return _load_rows(Path(path), 7)


def results_rows(
    frame: int, track_ids: list[int], boxes: NDArray[np.floating], scores: list[float]
) -> list[str]:
    """MOTChallenge result lines for one frame (boxes xyxy); columns 8-10 are ``-1``."""
    lines = []
    for tid, box, sc in zip(
        track_ids, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), scores, strict=True
    ):
        x1, y1, x2, y2 = box.tolist()
        lines.append(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{sc:.4f},-1,-1,-1")
    return lines


def write_results(path: str | Path, lines: list[str]) -> None:
    """Write result lines (from ``results_rows``) to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + ("\n" if lines else ""))


def read_camera_motion(path: str | Path, seq_length: int) -> list[NDArray[np.float64] | None]:
    """Per-frame camera motion (index 0 = frame 1) from a ``gmc.txt``: one line per frame,
    ``frame_index_from_0 a11 a12 tx a21 a22 ty`` (BoT-SORT's convention), the ``[2,3]`` affine from the previous
    frame's pixels to this frame's. Frames without a line get ``None`` (no motion known)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p} not found")
    try:
        data = np.loadtxt(p, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InvalidInputError(
            f"{p} is not a camera-motion file (index a11 a12 tx a21 a22 ty): {exc}"
        ) from None
    if data.size == 0:
        return [None] * seq_length
    if data.shape[1] != 7 or not np.isfinite(data).all():
        raise InvalidInputError(f"{p}: expected 7 finite columns per line (index a11 a12 tx a21 a22 ty)")
    out: list[NDArray[np.float64] | None] = [None] * seq_length
    for row in data:
        i = int(row[0])
        if row[0] != i or not 0 <= i < seq_length:
            raise InvalidInputError(f"{p}: frame index {row[0]:g} outside 0..{seq_length - 1}")
        out[i] = row[1:].reshape(2, 3).copy()
    return out
