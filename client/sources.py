"""Frame sources for the camera client: a video file, a camera index, an rtsp/http URL, or an image folder
(a MOTChallenge sequence folder ``SEQ`` or its ``SEQ/img1``: the frame rate comes from ``SEQ/seqinfo.ini`` and its
``det/det.txt`` can be sent along).

A source yields :class:`SourceFrame` with BGR pixels as OpenCV reads them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import ScoreRule, read_detections

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class SourceFrame:
    """``index`` counts from 1 (MOTChallenge frame numbers); ``timestamp`` in seconds; ``bgr`` HxWx3 uint8;
    ``encoded``: the file's own JPEG/PNG bytes when the source is an image folder (sent as they are)."""

    index: int
    timestamp: float
    bgr: np.ndarray
    encoded: bytes | None = None
    detections: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # boxes xyxy, scores, classes


class FrameSource:
    """Iterate frames. ``fps`` is the source's nominal rate (0 when unknown); ``live`` for cameras/streams."""

    def __init__(self, spec: str, fps: float, live: bool) -> None:
        self.spec = spec
        self.fps = fps
        self.live = live

    def __iter__(self) -> Iterator[SourceFrame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass


DEFAULT_FOLDER_FPS = 10.0
"""The rate an image folder's frames are stamped at when nothing gives it (a warning says so, naming --fps)."""


class ImageFolderSource(FrameSource):
    """The images of a folder in name order. ``folder`` may be a MOTChallenge sequence (``SEQ``: its ``img1/``
    is read) or its image folder itself (``SEQ/img1``); either way the sequence's ``seqinfo.ini`` gives the frame
    rate. ``fps``: the rate when no ``seqinfo.ini`` gives one (0: unknown, frames stamped at
    :data:`DEFAULT_FOLDER_FPS` and :attr:`notices` says so once)."""

    def __init__(
        self,
        folder: Path,
        fps: float = 0.0,
        detections: Path | None = None,
        score_rule: ScoreRule | None = None,
    ):
        self.sequence = sequence_root(folder)
        img_dir = folder / "img1" if (folder / "img1").is_dir() else folder
        self.files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise NotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) in {img_dir}")
        self.notices: list[str] = []
        rate = _seqinfo_fps(self.sequence) if self.sequence is not None else 0.0
        if rate <= 0 and fps <= 0:
            self.notices.append(
                f"the frame rate of {folder} is unknown (no seqinfo.ini with frameRate in or beside it): its "
                f"frames are stamped at {DEFAULT_FOLDER_FPS:g} fps, which the tracker's motion model relies on; "
                "give the real rate with --fps"
            )
        super().__init__(str(folder), rate if rate > 0 else max(fps, 0.0), live=False)
        self.dets = (
            read_mot_detections(detections, len(self.files), score_rule) if detections is not None else None
        )

    def __iter__(self) -> Iterator[SourceFrame]:
        # Frame i (from 1) at i / fps seconds, computed as `roitrack eval-mot` does (bit-identical timestamps);
        # never 0, which would tell the server to use its own clock.
        rate = self.fps if self.fps > 0 else DEFAULT_FOLDER_FPS
        for i, p in enumerate(self.files, start=1):
            data = p.read_bytes()
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InvalidInputError(f"cannot read image {p}")
            dets = None
            if self.dets is not None:
                dets = self.dets[i - 1]
            encoded = data if p.suffix.lower() in (".jpg", ".jpeg", ".png") else None
            yield SourceFrame(i, i / rate, bgr, encoded, dets)


def sequence_root(folder: Path) -> Path | None:
    """The MOTChallenge sequence an image folder belongs to: ``folder`` itself when it holds ``seqinfo.ini`` or
    ``img1/``, its parent when ``folder`` is the image folder its parent's ``seqinfo.ini`` names (``imDir``,
    ``img1`` by default), else ``None``."""
    if (folder / "seqinfo.ini").is_file() or (folder / "img1").is_dir():
        return folder
    ini = folder.resolve().parent / "seqinfo.ini"
    if ini.is_file() and (_seqinfo_value(ini, "imdir") or "img1") == folder.resolve().name:
        return folder.resolve().parent
    return None


class VideoSource(FrameSource):
    def __init__(self, spec: str, target: int | str, live: bool) -> None:
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise NotFoundError(f"cannot open video source {spec!r}")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        super().__init__(spec, fps if 0 < fps < 1000 else 0.0, live)

    def __iter__(self) -> Iterator[SourceFrame]:
        i = 0
        t0 = time.monotonic()
        while True:
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                return
            i += 1
            ts = time.monotonic() - t0 if self.live or self.fps <= 0 else i / self.fps
            yield SourceFrame(i, ts, bgr)

    def close(self) -> None:
        self.cap.release()


class LatestOnly:
    """Wrap a live source so a slow consumer always gets the newest frame: a thread keeps reading (cameras and
    streams deliver at their own pace and buffer stale frames otherwise) and older unread frames are skipped
    (counted in ``skipped``)."""

    def __init__(self, frames: Iterable[SourceFrame]) -> None:
        self._it = iter(frames)
        self._cond = threading.Condition()
        self._latest: SourceFrame | None = None
        self._done = False
        self._error: BaseException | None = None
        self.skipped = 0
        self._thread = threading.Thread(target=self._pump, name="roitrack-capture", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for frame in self._it:
                with self._cond:
                    if self._latest is not None:
                        self.skipped += 1
                    self._latest = frame
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced to the consumer
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[SourceFrame]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._latest is not None or self._done)
                frame, self._latest = self._latest, None
                if frame is None:
                    if self._error is not None:
                        raise self._error
                    return
            yield frame


def open_source(
    spec: str, fps: float = 0.0, detections: str | None = None, score_rule: ScoreRule | None = None
) -> FrameSource:
    """``spec``: camera index (``0``), ``rtsp://``/``http(s)://`` URL, a video file, or an image folder (a
    MOTChallenge sequence ``SEQ`` or its ``SEQ/img1``). ``fps``: an image folder's rate when its ``seqinfo.ini``
    gives none.

    ``detections``: a MOTChallenge ``det.txt`` (image folders only); ``"auto"`` uses the sequence's
    ``det/det.txt`` (``SEQ/det/det.txt`` for ``SEQ/img1`` too); its scores are read by ``score_rule``
    (``--score-scale`` / ``--score-clip``, see ``ScoreRule``)."""
    if spec.isdigit():
        return VideoSource(spec, int(spec), live=True)
    if spec.startswith(("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")):
        return VideoSource(spec, spec, live=True)
    p = Path(spec)
    if p.is_dir():
        det_path = None
        if detections == "auto":
            det_path = (sequence_root(p) or p) / "det" / "det.txt"
            if not det_path.is_file():
                raise NotFoundError(f"{det_path} not found (the sequence has no detections to send)")
        elif detections:
            det_path = Path(detections)
        return ImageFolderSource(p, fps, det_path, score_rule)
    if p.is_file():
        if detections:
            raise InvalidInputError("--detections works with image folders only")
        return VideoSource(spec, spec, live=False)
    raise NotFoundError(f"source {spec!r} is not a camera index, URL, video file or image folder")


def _seqinfo_value(ini: Path, key: str) -> str | None:
    """The value of ``key`` (case-insensitive) in a ``seqinfo.ini``, or ``None``."""
    for line in ini.read_text(errors="replace").splitlines():
        k, _, v = line.partition("=")
        if k.strip().lower() == key:
            return v.strip()
    return None


def _seqinfo_fps(folder: Path) -> float:
    ini = folder / "seqinfo.ini"
    if ini.is_file():
        value = _seqinfo_value(ini, "framerate")
        try:
            return float(value) if value is not None else 0.0
        except ValueError:
            return 0.0
    return 0.0


def read_mot_detections(
    path: Path, n_frames: int, score_rule: ScoreRule | None = None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A MOTChallenge ``det.txt`` -> per frame (index 0 = frame 1) ``(boxes xyxy, scores in [0,1], classes)``,
    read by the same reader (and score rule) as ``roitrack eval-mot``."""
    if not path.is_file():
        raise NotFoundError(f"detections file {path} not found")
    rule = score_rule or ScoreRule()
    return [
        (fd.boxes, fd.scores, np.zeros(len(fd.scores), np.int64))
        for fd in read_detections(path, n_frames, "max" if rule.by_max else rule.scale, score_clip=rule.clip)
    ]
