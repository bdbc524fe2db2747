"""One adapter per tracker: the same per-frame detections in, ``(track_ids, boxes xyxy, scores)`` out.

Every adapter is built fresh per sequence with the sequence's frame rate and otherwise its library's defaults
(what a user gets out of the box). ``update`` is the only thing timed; building each library's input object
(``sv.Detections``, norfair ``Detection`` list, DeepSORT tuples) happens in ``prepare``, outside the clock.

Camera motion (moving cameras): ``set_warp(warp)`` before each ``update`` hands the frame's ``[2,3]`` camera motion
(a ``gmc.txt`` row) to the trackers that can use one - ours (``Tracker.update(warp=...)``), roboflow BoT-SORT and
BoxMOT's BotSort / HybridSort / BoostTrack / OccluBoost, whose camera-motion component is swapped for one that
returns the file's warp (their own estimators need the images, which the benchmark does not use). Every other
tracker has no camera-motion compensation in its design. Without a warp file the CMC-capable peers run with their
CMC off (on a blank frame it could only return the identity, at a cost).

BoxMOT (AGPL-3.0) is an optional benchmark-only dependency (``pip install 'roitrack[bench-boxmot]'``, see
docs/tracking.md); only this module imports it, lazily; the service and ``tracker_core`` never do (an
import-linter contract).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracker_core.tracking import DEFAULT_CONFIG, Tracker, TrackerConfig

Output = tuple[list[int], NDArray[np.float32], list[float]]


class Adapter:
    """``prepare(boxes, scores, emb) -> payload`` (untimed), ``update(payload, t) -> raw`` (timed),
    ``collect(raw) -> (ids, boxes [K,4] xyxy, scores)`` (untimed)."""

    name = "?"
    note = ""
    supports_warp = False  # whether set_warp reaches the tracker (camera-motion compensation)
    _warp: NDArray[np.float64] | None = None

    def set_warp(self, warp: NDArray[np.float64] | None) -> None:
        """The camera motion into the frame the next ``update`` gets (``None``: none known)."""
        self._warp = warp

    def prepare(
        self, boxes: NDArray[np.float32], scores: NDArray[np.float32], emb: NDArray[np.float32] | None
    ) -> Any:
        return boxes, scores, emb

    def update(self, payload: Any, t: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def collect(self, raw: Any) -> Output:  # pragma: no cover - abstract
        raise NotImplementedError


def _empty() -> Output:
    return [], np.zeros((0, 4), np.float32), []


class Ours(Adapter):
    def __init__(
        self, frame_rate: float, config: TrackerConfig = DEFAULT_CONFIG, use_embeddings: bool = False
    ):
        self.tracker = Tracker(config)
        self.use_embeddings = use_embeddings
        self.name = "roitrack (ours, appearance)" if use_embeddings else "roitrack (ours)"

    supports_warp = True

    def update(self, payload: Any, t: float) -> Any:
        boxes, scores, emb = payload
        return self.tracker.update(
            boxes, scores, t, embeddings=emb if self.use_embeddings else None, warp=self._warp
        )

    def collect(self, raw: Any) -> Output:
        if not raw:
            return _empty()
        return [o.track_id for o in raw], np.stack([o.box for o in raw]), [o.score for o in raw]


class _Supervision(Adapter):
    """Base for trackers taking ``sv.Detections`` and returning them with ``tracker_id``."""

    def prepare(
        self, boxes: NDArray[np.float32], scores: NDArray[np.float32], emb: NDArray[np.float32] | None
    ) -> Any:
        import supervision as sv

        return sv.Detections(
            xyxy=boxes.astype(np.float32).reshape(-1, 4),
            confidence=scores.astype(np.float32),
            class_id=np.zeros(len(scores), dtype=int),
        )

    def collect(self, raw: Any) -> Output:
        if raw is None or len(raw) == 0 or raw.tracker_id is None:
            return _empty()
        keep = np.asarray(raw.tracker_id) >= 0
        conf = raw.confidence if raw.confidence is not None else np.ones(len(raw))
        return (
            [int(x) for x in np.asarray(raw.tracker_id)[keep]],
            np.asarray(raw.xyxy, np.float32)[keep],
            [float(x) for x in np.asarray(conf)[keep]],
        )


class RoboflowTrackers(_Supervision):
    """roboflow ``trackers`` (SORT / ByteTrack / OC-SORT / BoT-SORT), timestamp-driven like ours."""

    def __init__(self, kind: str, frame_rate: float, camera_motion: bool = False):
        import trackers

        cls = {
            "SORT": trackers.SORTTracker,
            "ByteTrack": trackers.ByteTrackTracker,
            "OC-SORT": trackers.OCSORTTracker,
            "BoT-SORT": trackers.BoTSORTTracker,
        }[kind]
        kwargs: dict[str, Any] = {"frame_rate": frame_rate}
        self._frame: NDArray[np.uint8] | None = None
        if kind == "BoT-SORT":
            # its CMC estimates from the image, which the benchmark does not use: with a warp file its CMC
            # component returns the file's warp (on a 1x1 stand-in frame), else CMC is off
            kwargs["enable_cmc"] = camera_motion
            self.supports_warp = camera_motion
            self.note = "CMC from gmc.txt" if camera_motion else "CMC off (detections only)"
        self.tracker = cls(**kwargs)
        if kind == "BoT-SORT" and camera_motion:
            self.tracker.cmc = _FileCMC(self)
            self._frame = np.zeros((1, 1, 3), np.uint8)
        self.name = f"trackers {kind}"

    def update(self, payload: Any, t: float) -> Any:
        if self._frame is not None:
            return self.tracker.update(payload, self._frame)
        return self.tracker.update(payload)


class SupervisionByteTrack(_Supervision):
    def __init__(self, frame_rate: float):
        import supervision as sv

        self.tracker = sv.ByteTrack(frame_rate=round(frame_rate))
        self.name = f"supervision {sv.__version__} ByteTrack"

    def update(self, payload: Any, t: float) -> Any:
        return self.tracker.update_with_detections(payload)


class Norfair(Adapter):
    """norfair with its IoU distance (threshold 0.7 as in its detector demos), boxes as two points."""

    def __init__(self, frame_rate: float):
        import norfair

        self._norfair = norfair
        self.tracker = norfair.Tracker(distance_function="iou", distance_threshold=0.7)
        self.name = "norfair"
        self.note = "IoU distance, threshold 0.7; matched-this-frame objects output"

    def prepare(
        self, boxes: NDArray[np.float32], scores: NDArray[np.float32], emb: NDArray[np.float32] | None
    ) -> Any:
        dets = [
            self._norfair.Detection(
                points=b.reshape(2, 2).astype(np.float64), scores=np.array([s, s], np.float64)
            )
            for b, s in zip(boxes, scores, strict=True)
        ]
        return dets

    def update(self, payload: Any, t: float) -> Any:
        return payload, self.tracker.update(detections=payload)

    def collect(self, raw: Any) -> Output:
        dets, objs = raw
        current = {id(d) for d in dets}
        ids, boxes, scores = [], [], []
        for o in objs:
            if o.last_detection is not None and id(o.last_detection) in current:
                ids.append(int(o.id))
                boxes.append(np.asarray(o.last_detection.points, np.float32).reshape(4))
                scores.append(float(o.last_detection.scores[0]))
        if not ids:
            return _empty()
        return ids, np.stack(boxes), scores


class DeepSortRealtime(Adapter):
    """deep-sort-realtime with no built-in embedder: fed our embeddings when given, else random unit vectors
    (cosine distance ~1, so the appearance cascade never matches and only its IoU stage associates)."""

    def __init__(self, frame_rate: float, with_embeddings: bool):
        from deep_sort_realtime.deepsort_tracker import DeepSort

        self.tracker = DeepSort(max_age=round(frame_rate), embedder=None)
        self.with_embeddings = with_embeddings
        self.name = (
            "deep-sort-realtime (our embeddings)" if with_embeddings else "deep-sort-realtime (no appearance)"
        )
        self.note = "" if with_embeddings else "no encoder given: random embeddings, appearance inert"
        self._rng = np.random.default_rng(0)

    def prepare(
        self, boxes: NDArray[np.float32], scores: NDArray[np.float32], emb: NDArray[np.float32] | None
    ) -> Any:
        raw = [
            ([float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], float(s), "0")
            for b, s in zip(boxes, scores, strict=True)
        ]
        if self.with_embeddings and emb is not None:
            e = emb
        else:
            e = self._rng.standard_normal((len(raw), 128)).astype(np.float32)
            e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-12
        return raw, [x for x in e]

    def update(self, payload: Any, t: float) -> Any:
        raw, embeds = payload
        return self.tracker.update_tracks(raw, embeds=embeds)

    def collect(self, raw: Any) -> Output:
        ids, boxes, scores = [], [], []
        for tr in raw:
            if not tr.is_confirmed() or tr.time_since_update > 0:
                continue
            ltrb = tr.to_ltrb(orig=True, orig_strict=True)
            if ltrb is None:
                continue
            ids.append(int(tr.track_id))
            boxes.append(np.asarray(ltrb, np.float32))
            conf = tr.get_det_conf()
            scores.append(float(conf) if conf is not None else 1.0)
        if not ids:
            return _empty()
        return ids, np.stack(boxes), scores


class _FileCMC:
    """A tracker library's camera-motion component (``estimate`` for roboflow ``trackers``, ``apply`` for BoxMOT)
    that returns the warp its adapter was given for this frame (identity when none)."""

    def __init__(self, adapter: Adapter) -> None:
        self._adapter = adapter

    def _warp(self) -> NDArray[np.float64]:
        w = self._adapter._warp
        return np.eye(2, 3) if w is None else np.asarray(w, np.float64).reshape(2, 3)

    def estimate(self, frame: Any, boxes: Any = None) -> NDArray[np.float64]:
        return self._warp()

    def apply(self, img: Any, dets: Any = None) -> NDArray[np.float64]:
        return self._warp()

    def reset(self) -> None:
        pass


BOXMOT_KINDS = ("BotSort", "ByteTrack", "OcSort", "HybridSort", "BoostTrack", "OccluBoost")
"""BoxMOT 25's motion-only trackers in the benchmark (each also takes a ReID model, switched off here)."""


class BoxMot(Adapter):
    """A BoxMOT tracker with its class defaults, the sequence's frame rate, appearance off (no ReID model) and a
    blank frame of the sequence's size as its image argument; CMC from the warp file when given, else off."""

    def __init__(
        self, kind: str, frame_rate: float, frame_size: tuple[int, int], camera_motion: bool = False
    ) -> None:
        import inspect
        import logging

        import boxmot

        logging.getLogger("boxmot").setLevel(logging.WARNING)
        cls = getattr(boxmot, kind)
        params = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        if "frame_rate" in params:
            kwargs["frame_rate"] = round(frame_rate)
        if "use_embeddings" in params:
            kwargs["use_embeddings"] = False
        self.tracker = cls(**kwargs)
        self.name = f"BoxMOT {kind}"
        w, h = frame_size
        self._frame = np.zeros((max(int(h), 1), max(int(w), 1), 3), np.uint8)
        notes = ["ReID off"] if "use_embeddings" in params else []
        if getattr(self.tracker, "cmc", None) is not None:
            self.tracker.cmc = _FileCMC(self) if camera_motion else None
            self.supports_warp = camera_motion
            notes.append("CMC from gmc.txt" if camera_motion else "CMC off (detections only)")
        self.note = ", ".join(notes)

    def prepare(
        self, boxes: NDArray[np.float32], scores: NDArray[np.float32], emb: NDArray[np.float32] | None
    ) -> Any:
        n = len(scores)
        return np.concatenate(
            [boxes.reshape(n, 4), scores.reshape(n, 1), np.zeros((n, 1), np.float32)], axis=1
        ).astype(np.float32)

    def update(self, payload: Any, t: float) -> Any:
        return self.tracker.update(payload, self._frame)

    def collect(self, raw: Any) -> Output:
        a = np.asarray(raw, np.float32)
        if a.ndim != 2 or a.shape[0] == 0:
            return _empty()
        return [int(x) for x in a[:, 4]], a[:, :4].copy(), [float(x) for x in a[:, 5]]


@dataclass(frozen=True)
class PeerSpec:
    key: str
    make: Callable[[float], Adapter]


def _roboflow(kind: str, frame_rate: float) -> Adapter:
    return RoboflowTrackers(kind, frame_rate)


def default_peers(with_embeddings: bool) -> list[PeerSpec]:
    """Every peer of the benchmark (ours first)."""
    specs = [PeerSpec("ours", lambda fr: Ours(fr))]
    if with_embeddings:
        specs.append(PeerSpec("ours_appearance", lambda fr: Ours(fr, use_embeddings=True)))
    for kind in ("SORT", "ByteTrack", "OC-SORT", "BoT-SORT"):
        specs.append(PeerSpec(f"trackers_{kind}", functools.partial(_roboflow, kind)))
    specs += [
        PeerSpec("supervision_ByteTrack", lambda fr: SupervisionByteTrack(fr)),
        PeerSpec("norfair", lambda fr: Norfair(fr)),
        PeerSpec("deep_sort_realtime", lambda fr: DeepSortRealtime(fr, with_embeddings)),
    ]
    return specs


def mot_peers(frame_size: tuple[int, int], camera_motion: bool) -> list[PeerSpec]:
    """The trackers of ``roitrack bench mot`` for one sequence (``frame_size`` = (width, height); ``camera_motion``:
    the sequence has a warp file and the CMC-capable trackers get it): ours first, then roboflow ``trackers``,
    supervision, BoxMOT's motion-only trackers, norfair and deep-sort-realtime."""
    specs = [PeerSpec("ours", lambda fr: Ours(fr))]
    for kind in ("SORT", "ByteTrack", "OC-SORT", "BoT-SORT"):
        specs.append(
            PeerSpec(
                f"trackers_{kind}", functools.partial(RoboflowTrackers, kind, camera_motion=camera_motion)
            )
        )
    specs.append(PeerSpec("supervision_ByteTrack", lambda fr: SupervisionByteTrack(fr)))
    for kind in BOXMOT_KINDS:
        specs.append(
            PeerSpec(
                f"boxmot_{kind}",
                functools.partial(_boxmot, kind, frame_size=frame_size, camera_motion=camera_motion),
            )
        )
    specs += [
        PeerSpec("norfair", lambda fr: Norfair(fr)),
        PeerSpec("deep_sort_realtime", lambda fr: DeepSortRealtime(fr, False)),
    ]
    return specs


def _boxmot(kind: str, frame_rate: float, frame_size: tuple[int, int], camera_motion: bool) -> Adapter:
    return BoxMot(kind, frame_rate, frame_size, camera_motion)


def library_version(key: str) -> str:
    """The installed version of the library behind a peer key (part of the result cache's key)."""
    import importlib.metadata as md

    dist = {
        "ours": "roitrack",
        "trackers": "trackers",
        "supervision": "supervision",
        "boxmot": "boxmot",
        "norfair": "norfair",
        "deep_sort_realtime": "deep-sort-realtime",
    }
    prefix = "deep_sort_realtime" if key.startswith("deep_sort_realtime") else key.split("_", 1)[0]
    try:
        return md.version(dist.get(prefix, prefix))
    except md.PackageNotFoundError:
        return "not-installed"
