"""One adapter per tracker: the same per-frame detections in, ``(track_ids, boxes xyxy, scores)`` out.

Every adapter is built fresh per sequence with the sequence's frame rate and otherwise its library's defaults
(what a user gets out of the box). ``update`` is the only thing timed; building each library's input object
(``sv.Detections``, norfair ``Detection`` list, DeepSORT tuples) happens in ``prepare``, outside the clock.
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

    def update(self, payload: Any, t: float) -> Any:
        boxes, scores, emb = payload
        return self.tracker.update(boxes, scores, t, embeddings=emb if self.use_embeddings else None)

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

    def __init__(self, kind: str, frame_rate: float):
        import trackers

        cls = {
            "SORT": trackers.SORTTracker,
            "ByteTrack": trackers.ByteTrackTracker,
            "OC-SORT": trackers.OCSORTTracker,
            "BoT-SORT": trackers.BoTSORTTracker,
        }[kind]
        kwargs: dict[str, Any] = {"frame_rate": frame_rate}
        if kind == "BoT-SORT":
            # camera-motion compensation needs the image; PETS09 is a static camera and every tracker here gets
            # the same detections only, so CMC is off.
            kwargs["enable_cmc"] = False
            self.note = "CMC off (detections only; static camera)"
        self.tracker = cls(**kwargs)
        self.name = f"trackers {kind}"

    def update(self, payload: Any, t: float) -> Any:
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
