"""``Tracker``: per-stream multi-object tracker (Kalman + staged Hungarian association).

One ``Tracker`` per stream; it owns its tracks, its re-identification gallery and its ID counter (IDs are
consecutive from 1, issued when a track is confirmed). ``update`` is called once per frame with that frame's
detections and its timestamp in seconds; prediction uses the real elapsed time.

Association per frame (tracks first predicted to the frame's timestamp):

1. high-score detections vs confirmed + lost tracks: motion (buffered IoU, optional Mahalanobis and class gates)
   decides which pairs are possible; with embeddings, the cosine distance re-ranks among those pairs, weighted
   by how informative and how reliable they have proven on this stream;
2. low-score detections vs the remaining confirmed (and just-lost) tracks: buffered IoU (the BYTE idea: keep
   occluded objects alive);
3. remaining high-score detections vs tentative tracks: buffered IoU;
4. unmatched high-score detections start tentative tracks; at confirmation a new track may take the ID of a
   lost track or gallery entry that looks the same *and* could have walked there since it was last seen.

All of it runs as array operations over the track table; the only per-track Python work is building the
returned ``TrackOutput`` list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError
from tracker_core.tracking import costs, kalman
from tracker_core.tracking.config import DEFAULT_CONFIG, TrackerConfig
from tracker_core.tracking.gallery import Gallery
from tracker_core.tracking.matching import linear_assignment
from tracker_core.tracking.track import TrackState, TrackTable
from tracker_core.tracking.validation import validate_detections, validate_timestamp, validate_warp

_CONFIRMED = int(TrackState.CONFIRMED)
_LOST = int(TrackState.LOST)
_TENTATIVE = int(TrackState.TENTATIVE)
_REMOVED = int(TrackState.REMOVED)
_EMPTY = np.zeros(0, np.int64)


class TrackOutput(NamedTuple):
    """One tracked object in one frame.

    box: ``[4]`` xyxy float32 pixels of the original frame (the matched detection's box, or the Kalman box
    when ``output_filtered_box`` / for lost tracks). state: ``"confirmed"`` (matched this frame) or ``"lost"``
    (predicted, only with ``output_lost``). det_index: index of the matched detection in this frame's input,
    -1 when lost. age_s: seconds since the track's first detection.
    """

    track_id: int
    box: np.ndarray
    score: float
    class_id: int
    state: str
    det_index: int
    age_s: float


class Tracker:
    """Multi-object tracker for one stream. See the module docstring for the algorithm."""

    def __init__(self, config: TrackerConfig = DEFAULT_CONFIG) -> None:
        if not isinstance(config, TrackerConfig):
            raise InvalidInputError(f"config must be a TrackerConfig, got {type(config).__name__}")
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every track, the gallery and the ID counter."""
        cfg = self.config
        self._tracks = TrackTable(bank_size=int(cfg.bank_size))
        self._gallery = Gallery(int(cfg.gallery_size), cfg.gallery_max_age_s)
        self._next_id = 1
        self._multi_class = False  # class gates are skipped while every detection so far had one class
        self._first_class: int | None = None
        self._classes_given = False  # all class 0 until a frame comes with classes
        self._app_margin = 0.0  # smoothed appearance margin: 0 = embeddings not (yet) shown to be informative
        self._veto_error = (
            1.0  # smoothed share of sure motion matches an appearance veto would cut (1: veto off)
        )
        # rank-1 confusion on sure matches: discounted counts, rate = (confused + 1) / (judged + 2) (prior 1/2)
        self._conf_bad = 0.0
        self._conf_n = 0.0
        # sure matches beyond the gate (appearance_calibrated): discounted counts, rate with prior 1/2
        self._dis_bad = 0.0
        self._dis_n = 0.0
        # misleading sure matches (embedding names a rival): discounted counts, rate with prior 1/2
        self._mis_bad = 0.0
        self._mis_n = 0.0
        self._decisive_ok = False
        # per-stream distance calibration: discounted histograms of sure-match and rival distances
        self._own_hist = np.zeros(costs.CALIBRATION_BINS)
        self._rival_hist = np.zeros(costs.CALIBRATION_BINS)
        self._scale_same = (
            0.0  # costs.DistanceScale of the stream (the ideal embeddings' scale until measured)
        )
        self._scale_other = 0.5
        self._separation = 0.0
        # the field of view as the detections show it: smallest xyxy box holding every box seen (costs.left_view)
        self._extent = np.array([np.inf, np.inf, -np.inf, -np.inf])
        self._last_time: float | None = None
        self._frame_dt = 0.0  # smoothed seconds between frames (0: not yet known)
        self.frame_count = 0

    @property
    def num_tracks(self) -> int:
        """Live tracks (tentative, confirmed and lost)."""
        return len(self._tracks)

    @property
    def appearance_margin(self) -> float:
        """The smoothed appearance margin (see ``TrackerConfig.appearance_margin_ref``)."""
        return self._app_margin

    @property
    def appearance_confusion(self) -> float:
        """Rank-1 confusion rate on sure matches, ``(confused + 1) / (judged + 2)`` of the discounted counts
        (1/2 before any evidence; see ``costs.confusion_counts``)."""
        return (self._conf_bad + 1.0) / (self._conf_n + 2.0)

    @property
    def appearance_misleading(self) -> float:
        """Rate of misleading sure matches, ``(misleading + 1) / (judged + 2)`` of the discounted counts (1/2
        before any evidence; see ``costs.misleading_counts``)."""
        return (self._mis_bad + 1.0) / (self._mis_n + 2.0)

    @property
    def appearance_separation(self) -> float:
        """How well this stream's embeddings rank objects (``costs.separation``: ``2 * AUC - 1`` of rival vs
        sure-match distances, shrunk while evidence is scarce): ~0 for random or constant embeddings."""
        return float(self._separation)

    @property
    def appearance_scale(self) -> costs.DistanceScale:
        """This stream's typical same-object and different-object distances (``costs.distance_scale``)."""
        return costs.DistanceScale(self._scale_same, self._scale_other)

    @property
    def appearance_informative(self) -> bool:
        """Whether embeddings have proven informative enough for long-term re-identification."""
        cfg = self.config
        if cfg.appearance_calibrated:
            enough = self._separation >= cfg.reid_min_separation
        else:
            enough = self._app_margin >= 0.5 * cfg.appearance_margin_ref
        return bool(
            enough
            and self.appearance_misleading <= cfg.reid_max_misleading
            and self.appearance_confusion <= 0.5 * cfg.appearance_max_confusion
        )

    @property
    def gallery_size(self) -> int:
        return len(self._gallery)

    @property
    def next_id(self) -> int:
        """The ID the next confirmed new track will get (IDs issued so far: ``1 .. next_id - 1``)."""
        return self._next_id

    # ------------------------------------------------------------------ update
    def update(
        self,
        boxes: NDArray[np.floating],
        scores: NDArray[np.floating],
        timestamp: float,
        classes: NDArray[np.integer] | None = None,
        embeddings: NDArray[np.floating] | None = None,
        warp: NDArray[np.floating] | None = None,
    ) -> list[TrackOutput]:
        """Advance to ``timestamp`` (seconds) with this frame's detections; return the tracks in this frame.

        boxes ``[N,4]`` xyxy float pixels; scores ``[N]``; classes ``[N]`` int (default all 0); embeddings
        ``[N,D]`` float (optional; any D, fixed for the stream); warp ``[2,3]`` the camera motion since the
        previous ``update`` (an affine mapping that frame's pixels to this frame's; ``None``: a static camera).
        Raises ``InvalidInputError`` on bad input, leaving the tracker unchanged.
        """
        cfg = self.config
        b, s, c, e = validate_detections(boxes, scores, classes, embeddings)
        ts = validate_timestamp(timestamp, self._last_time)
        w = validate_warp(warp)
        tr = self._tracks
        if e is not None:
            if tr.embed_dim == 0:
                tr.set_embed_dim(int(e.shape[1]))
            elif e.shape[1] != tr.embed_dim:
                raise InvalidInputError(
                    f"embeddings have dimension {e.shape[1]}, but this stream's earlier ones had {tr.embed_dim}"
                )
        first_frame = self.frame_count == 0
        if classes is not None:
            self._classes_given = True
        if self._first_class is None and c.size:
            self._first_class = int(c[0])
        self.frame_count += 1
        if w is not None and len(
            self._gallery
        ):  # where removed tracks were last seen, in this frame's pixels
            self._gallery.boxes = kalman.warp_boxes(self._gallery.boxes, w)
        if len(tr) == 0 and b.shape[0] == 0:  # nothing to track, nothing to start
            self._last_time = ts
            if len(self._gallery):
                self._gallery.prune(ts)
            return []

        # 0. predict every track to now
        if self._last_time is not None and ts > self._last_time:
            gap = ts - self._last_time
            self._frame_dt = gap if self._frame_dt == 0 else 0.9 * self._frame_dt + 0.1 * gap
        if len(tr):
            dt = ts - (self._last_time if self._last_time is not None else ts)
            if dt > 0:
                tr.mean, tr.cov = kalman.predict(tr.mean, tr.cov, dt, cfg.q_pos, cfg.q_vel)
            if w is not None:  # camera motion: every track into this frame's image coordinates
                tr.mean, tr.cov = kalman.warp_affine(tr.mean, tr.cov, w)
                tr.det_box = kalman.warp_boxes(tr.det_box, w)
                hz = tr.hist_z.reshape(-1, 4)
                tr.hist_z = kalman.xyxy_to_cxcywh(kalman.warp_boxes(kalman.cxcywh_to_xyxy(hz), w)).reshape(
                    tr.hist_z.shape
                )
            tr.det_index[:] = -1
        self._last_time = ts

        sc = np.minimum(s, 1.0)
        if b.shape[0]:
            self._extent = np.concatenate(
                [
                    np.minimum(self._extent[:2], b[:, :2].min(axis=0)),
                    np.maximum(self._extent[2:], b[:, 2:].max(axis=0)),
                ]
            )
            z = kalman.xyxy_to_cxcywh(b)
            unmatched_hi = self._associate(b, z, sc, s, c, e, ts)
        else:
            unmatched_hi = _EMPTY

        # unmatched tracks: confirmed -> lost; expired tentative / lost -> removed (gallery)
        if len(tr):
            since = ts - tr.last_seen
            state = tr.state
            tr.state[(state == _CONFIRMED) & (since > 0)] = _LOST
            state = tr.state
            dead = ((state == _TENTATIVE) & (since > cfg.tentative_max_age_s)) | (
                (state == _LOST) & (since > cfg.max_lost_s)
            )
            if dead.any():
                self._remove(dead, ts)

        # new tentative tracks from unmatched high-score detections
        new = unmatched_hi[sc[unmatched_hi] >= cfg.new_track_score] if unmatched_hi.size else _EMPTY
        if new.size:
            mean, cov = kalman.initiate(z[new], cfg.r_meas, cfg.init_vel_std)
            first = len(tr)
            tr.append(mean, cov, c[new], s[new], ts, new, b[new], e[new] if e is not None else None)
            if cfg.confirm_hits <= 1 or (first_frame and cfg.confirm_first_frame):
                self._confirm(np.arange(first, len(tr)), ts)

        if cfg.reid_repair_hits and len(tr):
            self._repair_identities(ts, e is not None)

        if len(tr) and (tr.state == _REMOVED).any():
            tr.keep(tr.state != _REMOVED)  # lost tracks whose identity a new track took over
        if len(tr) > cfg.max_tracks:
            self._enforce_cap(ts)
        if len(self._gallery):
            self._gallery.prune(ts)
        return self._outputs(ts)

    # ------------------------------------------------------------------ association
    def _associate(
        self,
        b: NDArray[np.float64],
        z: NDArray[np.float64],
        sc: NDArray[np.float64],
        s: NDArray[np.float64],
        c: NDArray[np.int64],
        e: NDArray[np.float32] | None,
        ts: float,
    ) -> NDArray[np.int64]:
        """Stages 1-3 and the update of matched tracks; returns the unmatched high-score detections."""
        cfg = self.config
        tr = self._tracks
        high = sc >= cfg.high_score
        hi_idx = high.nonzero()[0]
        if len(tr) == 0:
            return hi_idx
        lo_idx = (~high & (sc >= cfg.low_score)).nonzero()[0]
        state = tr.state
        # buffered IoU [T,N] of every track (buffer growing with the time since its last detection) with every
        # detection: computed once, shared by the three stages
        buffer = np.minimum(cfg.lost_buffer_rate * (ts - tr.last_seen), cfg.lost_buffer_max)
        if cfg.height_modulated:
            iou = costs.height_modulated_iou_cxcywh(tr.mean[:, :4], z, buffer)
        else:
            iou = costs.buffered_iou_cxcywh(tr.mean[:, :4], z, buffer)
        if (
            not self._multi_class
            and self._classes_given
            and (c.min() != c.max() or c[0] != self._first_class)
        ):
            self._multi_class = True  # from now on, class gates apply

        # 1. high-score detections vs confirmed + lost tracks (fused cost)
        pool = (state != _TENTATIVE).nonzero()[0]
        rows1, dets1, um_pool, um_hi = self._stage_fused(pool, hi_idx, iou, z, sc, c, e, ts)

        # 2. low-score detections vs remaining confirmed (and recently lost) tracks (buffered IoU)
        rest = pool[um_pool]
        rest = rest[(state[rest] == _CONFIRMED) | ((ts - tr.last_seen[rest]) <= cfg.low_match_max_lost_s)]
        if cfg.match_cost_low_lost < cfg.match_cost_low and rest.size and lo_idx.size:
            # tracks already missed take a weak detection only where it sits squarely on their prediction
            iou2 = iou.copy()
            missed = rest[state[rest] != _CONFIRMED]
            sub = iou2[np.ix_(missed, lo_idx)]
            sub[sub < 1.0 - cfg.match_cost_low_lost] = 0.0
            iou2[np.ix_(missed, lo_idx)] = sub
            rows2, dets2 = self._stage_iou(rest, lo_idx, iou2, c, cfg.match_cost_low)
        else:
            rows2, dets2 = self._stage_iou(rest, lo_idx, iou, c, cfg.match_cost_low)

        rem_hi = hi_idx[um_hi]

        # 3. remaining high-score detections vs tentative tracks
        tent = (state == _TENTATIVE).nonzero()[0]
        rows3, dets3 = self._stage_iou(tent, rem_hi, iou, c, cfg.match_cost_tentative)
        if dets3.size:
            new_mask = np.zeros(rem_hi.shape[0], bool)
            new_mask[np.searchsorted(rem_hi, dets3)] = True
            new_mask = ~new_mask
            unmatched_hi = rem_hi[new_mask]
        else:
            unmatched_hi = rem_hi

        # matched tracks: Kalman update, memory, life cycle
        rows = np.concatenate([rows1, rows2, rows3])
        dets = np.concatenate([dets1, dets2, dets3])
        if rows.size:
            r = kalman.measurement_var(z[dets], sc[dets], cfg.r_meas, cfg.score_noise_weight)
            tr.mean[rows], tr.cov[rows] = kalman.update(tr.mean[rows], tr.cov[rows], z[dets], r)
            tr.observe(rows, z[dets], ts)
            tr.last_seen[rows] = ts
            tr.hits[rows] += 1
            tr.score[rows] = s[dets]
            tr.det_index[rows] = dets
            tr.det_box[rows] = b[dets]
            if e is not None:
                tr.remember(
                    rows,
                    e[dets],
                    cfg.ema_alpha,
                    cfg.appearance_consistency_ema,
                    cfg.appearance_consistent_dev if self._decisive_ok else 0.0,
                    cfg.memory_keep_dist,
                    cfg.appearance_decisive_dist,
                    self.appearance_scale if cfg.appearance_calibrated else None,
                )
            st = tr.state[rows]
            tr.state[rows[st == _LOST]] = _CONFIRMED
            promote = rows[(st == _TENTATIVE) & (tr.hits[rows] >= cfg.confirm_hits)]
            if promote.size:
                self._confirm(np.sort(promote), ts)

        return unmatched_hi

    def _direction_reference(self, rows: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Each track's earlier observation ``[R,4]`` for its direction of motion: the newest one at least
        ``direction_span_s`` before its latest (else its oldest kept), and whether it has one."""
        tr = self._tracks
        ht = tr.hist_t[rows]
        known = ~np.isnan(ht)
        count = known.sum(axis=1)
        old_enough = known & (ht <= ht[:, :1] - self.config.direction_span_s + 1e-9)
        old_enough[:, 0] = False
        pick = np.where(old_enough.any(axis=1), old_enough.argmax(axis=1), np.maximum(count - 1, 0))
        return tr.hist_z[rows, pick], count >= 2

    # ------------------------------------------------------------------ stages
    def _stage_fused(
        self,
        rows: NDArray[np.int64],
        det_idx: NDArray[np.int64],
        iou: NDArray[np.float64],
        z: NDArray[np.float64],
        sc: NDArray[np.float64],
        c: NDArray[np.int64],
        e: NDArray[np.float32] | None,
        ts: float,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Stage 1 on ``rows`` x ``det_idx`` of the shared buffered ``iou``.

        Returns (matched rows, matched dets, unmatched positions in rows, unmatched positions in det_idx)."""
        cfg = self.config
        tr = self._tracks
        if rows.size == 0 or det_idx.size == 0:
            return _EMPTY, _EMPTY, np.arange(rows.size), np.arange(det_idx.size)
        cost = 1.0 - iou[np.ix_(rows, det_idx)]
        gates = []
        if cfg.gate_chi2 > 0:
            r = kalman.measurement_var(tr.mean[rows, :4], None, cfg.r_meas, 0.0)
            maha = kalman.mahalanobis_sq(tr.mean[rows], tr.cov[rows], z[det_idx], r)
            gates.append(costs.mahalanobis_gate(maha, cfg.gate_chi2))
        if cfg.class_aware and self._multi_class:
            gates.append(costs.class_gate(tr.class_id[rows], c[det_idx]))
        if e is not None and cfg.appearance_weight > 0:
            valid = tr.emb_valid[rows]
            app = costs.cosine_distance(tr.emb[rows], e[det_idx], tr.bank[rows], tr.bank_valid[rows])
            app = np.where(valid[:, None], app, np.nan)
            margin = costs.appearance_margin(app, cost, cfg.appearance_confident_cost)
            k = cfg.appearance_margin_ema
            if margin is not None:
                self._app_margin = k * self._app_margin + (1.0 - k) * margin
            if cfg.appearance_calibrated:
                # the stream's own scale: sure matches vs rivals; every threshold below is read on it
                own, rivals = costs.sure_pair_distances(app, cost, cfg.appearance_confident_cost)
                kc = cfg.appearance_calibration_ema**own.size  # per sure match, whatever the frame rate
                self._own_hist = costs.distance_histogram(self._own_hist, own, kc)
                self._rival_hist = costs.distance_histogram(self._rival_hist, rivals, kc)
                self._separation = costs.separation(
                    self._own_hist, self._rival_hist, cfg.appearance_separation_z
                )
                self._scale_same, self._scale_other = costs.distance_scale(self._own_hist, self._rival_hist)
                app = costs.calibrate(app, self.appearance_scale)
            ev = costs.sure_match_evidence(app, cost, cfg.appearance_confident_cost, cfg.appearance_gate)
            ke = cfg.appearance_error_ema
            if cfg.appearance_calibrated:
                kd = cfg.appearance_evidence_ema**ev.sure
                self._dis_bad = kd * self._dis_bad + ev.disagree
                self._dis_n = kd * self._dis_n + ev.sure
                self._veto_error = (self._dis_bad + 1.0) / (self._dis_n + 2.0)
            elif ev.sure:
                self._veto_error = ke * self._veto_error + (1.0 - ke) * ev.disagree / ev.sure
            if cfg.appearance_calibrated:
                # evidence windows counted in judged sure matches, not frames: a 1 fps camera judges as many
                # matches before it trusts its embeddings as a 25 fps one, not 25 times fewer
                kc, km = (
                    cfg.appearance_evidence_ema**ev.confusion_judged,
                    cfg.appearance_evidence_ema**ev.misleading_judged,
                )
            else:
                kc = km = ke
            self._conf_bad = kc * self._conf_bad + ev.confused
            self._conf_n = kc * self._conf_n + ev.confusion_judged
            self._mis_bad = km * self._mis_bad + ev.misleading
            self._mis_n = km * self._mis_n + ev.misleading_judged
            if cfg.appearance_calibrated:
                informed = costs.appearance_weight(
                    self._separation,
                    cfg.appearance_weight,
                    cfg.appearance_separation_ref,
                    cfg.appearance_min_separation,
                )
            else:
                informed = costs.appearance_weight(
                    self._app_margin,
                    cfg.appearance_weight,
                    cfg.appearance_margin_ref,
                    cfg.appearance_min_margin,
                )
            w_margin = informed * costs.reliability(self.appearance_confusion, cfg.appearance_max_confusion)
            w = w_margin * costs.reliability(self.appearance_misleading, cfg.appearance_max_misleading)
            self._decisive_ok = w_margin > 0
            if w_margin > 0 and cfg.appearance_decisive_dist > 0:
                # crossings: among the candidates motion finds plausible, a decisive appearance gap settles it
                plausible = cost <= cfg.match_cost_high
                if gates:
                    plausible &= ~np.logical_or.reduce(gates)
                trusted = tr.app_dev[rows] <= cfg.appearance_consistent_dev
                if w > 0:
                    # crossings need what re-ranking needs: informative embeddings (margin) that also agree with
                    # the matches motion is sure about (reliability); often-wrong ones leave crossings to motion
                    gates.append(
                        costs.decisive_veto(
                            app,
                            plausible,
                            cfg.appearance_decisive_dist,
                            cfg.appearance_decisive_gap,
                            trusted,
                            cost,
                            cfg.appearance_decisive_motion_gap,
                        )
                    )
                if cfg.appearance_switch_streak > 0:
                    alt_d = self._calibrated(costs.cosine_distance(tr.alt_emb[rows], e[det_idx]))
                    suspicious = tr.alt_streak[rows] >= cfg.appearance_switch_streak
                    gates.append(
                        costs.switch_veto(
                            app, alt_d, suspicious, cfg.appearance_decisive_dist, cfg.memory_keep_dist
                        )
                    )
            if w > 0:
                # appearance re-ranks among the pairs motion allows; it never opens a pair motion rules out,
                # and vetoes only pairs motion is unsure about, once embeddings have proven reliable
                if cfg.appearance_veto_max_error > 0 and self._veto_error <= cfg.appearance_veto_max_error:
                    veto = costs.appearance_veto(
                        app,
                        cost,
                        cfg.appearance_confident_cost,
                        cfg.match_cost_high,
                        cfg.appearance_veto_dist or cfg.appearance_gate,
                    )
                    who = tr.state[rows] == _LOST  # only tracks motion already lost
                    if cfg.appearance_veto_proven:
                        who |= tr.app_dev[rows] <= cfg.appearance_consistent_dev
                    if cfg.appearance_veto_rival:
                        # ... and only where someone else claims the pair's detection or track: the detection looks
                        # like another track, or the track like another detection (a loose or false-positive box
                        # that looks like nobody is left to motion)
                        veto &= costs.rival_agrees(app, cfg.appearance_gate)
                    gates.append(veto & who[:, None])
                forbidden = np.logical_or.reduce(gates) if gates else None
                rank = self._rank(rows, det_idx, cost, z, sc, ts)
                fused = costs.fused_gated(rank, app, w, cfg.match_cost_high, forbidden)
                # within the ceiling wherever motion allows the pair (appearance re-ranks, never forbids)
                fused = np.where(np.isfinite(fused), np.minimum(fused, cfg.match_cost_high), np.inf)
                m, ur, uc = linear_assignment(fused, cfg.match_cost_high)
                return rows[m[:, 0]], det_idx[m[:, 1]], ur, uc
        if gates:
            cost = costs.gate(cost, np.logical_or.reduce(gates))
        m, ur, uc = linear_assignment(self._rank(rows, det_idx, cost, z, sc, ts), cfg.match_cost_high)
        return rows[m[:, 0]], det_idx[m[:, 1]], ur, uc

    def _rank(
        self,
        rows: NDArray[np.int64],
        det_idx: NDArray[np.int64],
        motion: NDArray[np.float64],
        z: NDArray[np.float64],
        sc: NDArray[np.float64],
        ts: float,
    ) -> NDArray[np.float64]:
        """The stage-1 ranking cost ``[R,N]``: the motion cost plus the weak cues (``costs.motion_cues``), kept
        within the ceiling for every pair motion allows (a cue re-ranks, never forbids), ``inf`` elsewhere."""
        cfg = self.config
        tr = self._tracks
        allowed = motion <= cfg.match_cost_high
        if not allowed.any():
            return motion
        ti, di = allowed.nonzero()
        prev, has_prev = self._direction_reference(rows)
        missed = np.clip(ts - tr.last_seen[rows] - self._frame_dt, 0.0, 1.0)
        cues = costs.motion_cues(
            costs.MotionCueWeights(cfg.stale_cost, cfg.score_weight, cfg.direction_weight),
            missed,
            np.minimum(tr.score[rows], 1.0),
            prev,
            tr.hist_z[rows, 0],
            has_prev,
            z[det_idx],
            sc[det_idx],
            ti,
            di,
        )
        rank = np.full(motion.shape, np.inf)
        rank[ti, di] = np.minimum(motion[ti, di] + cues, cfg.match_cost_high)
        return rank

    def _stage_iou(
        self,
        rows: NDArray[np.int64],
        det_idx: NDArray[np.int64],
        iou: NDArray[np.float64],
        c: NDArray[np.int64],
        max_cost: float,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Motion-only stage on the shared buffered ``iou [T,N]`` restricted to ``rows`` x ``det_idx``."""
        if rows.size == 0 or det_idx.size == 0:
            return _EMPTY, _EMPTY
        cost = 1.0 - iou[np.ix_(rows, det_idx)]
        if self.config.class_aware and self._multi_class:
            cost = costs.gate(cost, costs.class_gate(self._tracks.class_id[rows], c[det_idx]))
        m, _, _ = linear_assignment(cost, max_cost)
        return rows[m[:, 0]], det_idx[m[:, 1]]

    # ------------------------------------------------------------------ life cycle
    def _confirm(self, rows: NDArray[np.int64], ts: float) -> None:
        """Confirm tentative tracks ``rows`` (ascending): re-identify (lost tracks, gallery) or issue new IDs."""
        tr = self._tracks
        ids = np.zeros(rows.size, np.int64)
        if tr.embed_dim and self.appearance_informative:
            has = tr.emb_valid[rows]
            if has.any():
                ids[has] = self._reidentify(rows[has], ts)
        fresh = ids == 0
        n_fresh = int(fresh.sum())
        ids[fresh] = np.arange(self._next_id, self._next_id + n_fresh)
        self._next_id += n_fresh
        tr.track_id[rows] = ids
        tr.state[rows] = _CONFIRMED

    def _reidentify(self, rows: NDArray[np.int64], ts: float) -> NDArray[np.int64]:
        """IDs ``[M]`` for new tracks ``rows`` from lost tracks of this table and the gallery (0 = none).

        A candidate qualifies when every recent observation of the new track is within ``gallery_max_dist`` of
        its memory and it could have walked there in the time since it was last seen (``reid_max_speed``); one
        Hungarian assignment over both kinds. A re-linked lost track hands its ID over and is dropped."""
        cfg = self.config
        tr = self._tracks
        lost = (
            ((tr.state == _LOST) & (tr.track_id > 0) & tr.emb_valid).nonzero()[0] if cfg.reid_lost else _EMPTY
        )
        g = self._gallery
        n_lost, n_gal = lost.size, len(g) if g.emb.shape[1] == tr.embed_dim else 0
        if n_lost + n_gal == 0:
            return np.zeros(rows.size, np.int64)
        mem = np.concatenate([tr.emb[lost], g.emb[:n_gal]]) if n_gal else tr.emb[lost]
        last_box = np.concatenate([tr.det_box[lost], g.boxes[:n_gal]]) if n_gal else tr.det_box[lost]
        last_seen = np.concatenate([tr.last_seen[lost], g.seen[:n_gal]]) if n_gal else tr.last_seen[lost]
        cls = np.concatenate([tr.class_id[lost], g.classes[:n_gal]]) if n_gal else tr.class_id[lost]
        cand_ids = np.concatenate([tr.track_id[lost], g.ids[:n_gal]]) if n_gal else tr.track_id[lost]
        if tr.bank_size:
            query, valid = tr.bank[rows], tr.bank_valid[rows]
        else:  # no bank: the track's EMA memory and its latest observation must both agree
            query = np.stack([tr.emb[rows], tr.last_emb[rows]], axis=1)
            valid = np.repeat(tr.emb_valid[rows][:, None], 2, axis=1)
        raw = costs.worst_cosine_distance(query, valid, mem).T  # [C,M]
        exited = None
        if not cfg.reid_exits:
            exited = costs.left_view(tr.det_box[lost], tr.mean[lost, 4:6], self._extent, cfg.reid_edge_margin)
            if n_gal:
                exited = np.concatenate([exited, g.exited[:n_gal]])
        allowed = self._candidates_allowed(raw, last_box, last_seen, cls, exited, rows, ts)
        cost = self._calibrated(raw)
        live = ((tr.state == _CONFIRMED) & (tr.track_id > 0) & tr.emb_valid).nonzero()[0]
        # the objects visible now are rivals, read with the same query as the candidates
        if live.size and cfg.reid_rival_query:
            others = self._calibrated(costs.worst_cosine_distance(query, valid, tr.emb[live]).T).min(axis=0)
        elif live.size:
            others = self._calibrated(costs.cosine_distance(tr.emb[live], tr.emb[rows])).min(axis=0)
        else:
            others = np.full(rows.size, np.inf)
        allowed &= costs.distinct_enough(cost, others, cfg.reid_min_gap)
        cost = costs.gate(cost, ~allowed)
        m, _, _ = linear_assignment(cost, cfg.gallery_max_dist)
        out = np.zeros(rows.size, np.int64)
        if m.shape[0] == 0:
            return out
        out[m[:, 1]] = cand_ids[m[:, 0]]
        from_lost = m[:, 0] < n_lost
        if from_lost.any():
            old = lost[m[from_lost, 0]]
            new = rows[m[from_lost, 1]]
            tr.first_seen[new] = tr.first_seen[old]
            tr.state[old] = (
                _REMOVED  # handed over: leaves the table at the end of this update, not to the gallery
            )
            tr.track_id[old] = 0
        if (~from_lost).any():
            g.remove(m[~from_lost, 0] - n_lost)
        return out

    def _repair_identities(self, ts: float, observed: bool) -> None:
        """Identity repair (``reid_repair_hits``): undo a takeover once the evidence has held long enough.

        For every confirmed track matched in this frame, its observation ``last_emb`` is read against the gallery
        as a re-identification query is. A gallery entry *qualifies* when it is within ``gallery_max_dist``, could
        have walked there, is not a look-alike distance on this stream (``reid_max_false_match``), did not leave
        the view, and beats by ``reid_min_gap`` every other entry, every other object visible now and the track's
        own memory (as it was when the streak began; on a streak's first frame, as it is now). Consecutive
        frames naming the same entry count up (``repair_hits``); any other frame starts over. At
        ``reid_repair_hits`` the track takes the entry's ID and memory (the mean of the streak's observations)
        and its own ID goes to the gallery with the memory, box and time from the streak's start, so the person
        it had followed can be found when he returns."""
        cfg = self.config
        tr = self._tracks
        g = self._gallery
        rows = (
            ((tr.state == _CONFIRMED) & (tr.det_index >= 0) & (tr.track_id > 0) & tr.emb_valid).nonzero()[0]
            if observed and tr.embed_dim and self.appearance_informative
            else _EMPTY
        )
        n_gal = len(g) if g.emb.shape[1] == tr.embed_dim else 0
        counting = np.zeros(len(tr), bool)
        if rows.size and n_gal:
            raw = costs.cosine_distance(g.emb, tr.last_emb[rows])  # [G,M]
            cost = self._calibrated(raw)
            near = (cost <= cfg.gallery_max_dist).any(axis=0)  # most frames: no track looks like anyone gone
            rows, raw, cost = rows[near], raw[:, near], cost[:, near]
        if rows.size and n_gal:
            q = tr.last_emb[rows]
            allowed = self._candidates_allowed(
                raw, g.boxes, g.seen, g.classes, None if cfg.reid_exits else g.exited, rows, ts
            )
            live = ((tr.state == _CONFIRMED) & (tr.track_id > 0) & tr.emb_valid).nonzero()[0]
            to_live = self._calibrated(costs.cosine_distance(tr.emb[live], q))  # [L,M]
            itself = live[:, None] == rows[None, :]
            rivals = np.where(itself, np.inf, to_live).min(axis=0, initial=np.inf)
            running = tr.repair_hits[rows] > 0
            own = np.where(itself, to_live, np.inf).min(axis=0)
            if running.any():  # a running streak reads the track's own look from before it began
                own[running] = self._calibrated(
                    costs.paired_cosine_distance(tr.repair_emb[rows[running]], q[running])
                )
            allowed &= costs.distinct_enough(cost, np.minimum(own, rivals), cfg.reid_min_gap)
            allowed &= cost <= cfg.gallery_max_dist
            named = allowed.any(axis=0)
            r = rows[named]
            gid = g.ids[allowed.argmax(axis=0)[named]]  # at most one entry beats every other by the gap
            obs = q[named]
            going = (tr.repair_hits[r] > 0) & (tr.repair_id[r] == gid)
            start = r[~going]  # a new streak: remember the track as it is before this evidence
            tr.repair_emb[start] = tr.emb[start]
            tr.repair_box[start] = tr.det_box[start]
            tr.repair_seen[start] = ts
            tr.repair_hits[r] = np.where(going, tr.repair_hits[r] + 1, 1)
            tr.repair_sum[r] = np.where(going[:, None], tr.repair_sum[r] + obs, obs)
            tr.repair_id[r] = gid
            counting[r] = True
        tr.repair_hits[~counting] = 0
        done = (counting & (tr.repair_hits >= cfg.reid_repair_hits)).nonzero()[0]
        for r in done:
            tr.repair_hits[r] = 0
            pos = (g.ids == tr.repair_id[r]).nonzero()[0]
            if pos.size == 0:  # another track's repair took this entry in this frame
                continue
            g.remove(pos)
            g.add(
                tr.track_id[r : r + 1],
                tr.class_id[r : r + 1],
                tr.repair_emb[r : r + 1],
                ts,
                tr.repair_box[r : r + 1],
                tr.repair_seen[r : r + 1],
                np.zeros(1, bool),
            )
            tr.track_id[r] = tr.repair_id[r]
            mean = tr.repair_sum[r]
            tr.emb[r] = mean / max(float(np.linalg.norm(mean)), 1e-12)

    def _candidates_allowed(
        self,
        raw: NDArray[np.float64],
        last_box: NDArray[np.float64],
        last_seen: NDArray[np.float64],
        cls: NDArray[np.int64],
        exited: NDArray[np.bool_] | None,
        rows: NDArray[np.int64],
        ts: float,
    ) -> NDArray[np.bool_]:
        """``[C,M]``: which re-identification candidates (last box ``[C,4]``, last seen ``[C]``, class ``[C]``, gone out
        of view ``[C]`` or ``None``: not checked) tracks ``rows [M]`` may take, at raw cosine distances ``raw [C,M]``:
        within walking distance, not a look-alike distance on this stream, not gone out of view, the same class."""
        cfg = self.config
        tr = self._tracks
        allowed = costs.motion_plausible(
            last_box, last_seen, tr.det_box[rows], ts, cfg.reid_max_speed, cfg.reid_min_radius
        )
        if cfg.appearance_calibrated:
            # only as alike as two different objects on this stream rarely are (a look-alike world: nobody)
            allowed &= costs.false_match_rate(self._rival_hist, raw) <= cfg.reid_max_false_match
        if exited is not None:
            # an object that walked out of view is gone, not hidden: who comes in there is someone new
            allowed &= ~exited[:, None]
        if cfg.class_aware:
            allowed &= cls[:, None] == tr.class_id[rows][None, :]
        return allowed

    def _calibrated(self, distance: NDArray[np.float64]) -> NDArray[np.float64]:
        """Cosine distances on this stream's calibrated scale (``costs.calibrate``), or as they are without
        ``appearance_calibrated``."""
        return (
            costs.calibrate(distance, self.appearance_scale)
            if self.config.appearance_calibrated
            else distance
        )

    def _remove(self, dead: NDArray[np.bool_], ts: float) -> None:
        tr = self._tracks
        if tr.embed_dim and self._gallery.max_size:
            to_gallery = dead & (tr.track_id > 0) & tr.emb_valid
            if to_gallery.any():
                self._gallery.add(
                    tr.track_id[to_gallery],
                    tr.class_id[to_gallery],
                    tr.emb[to_gallery],
                    ts,
                    tr.det_box[to_gallery],
                    tr.last_seen[to_gallery],
                    costs.left_view(
                        tr.det_box[to_gallery],
                        tr.mean[to_gallery, 4:6],
                        self._extent,
                        self.config.reid_edge_margin,
                    ),
                )
        tr.keep(~dead)

    def _enforce_cap(self, ts: float) -> None:
        """Drop the stalest non-confirmed tracks (then the stalest of any kind) beyond ``max_tracks``."""
        tr = self._tracks
        excess = len(tr) - self.config.max_tracks
        priority = np.where(tr.state == _CONFIRMED, 1, 0)
        order = np.lexsort((tr.last_seen, priority))  # non-confirmed first, stalest first
        dead = np.zeros(len(tr), bool)
        dead[order[:excess]] = True
        self._remove(dead, ts)

    # ------------------------------------------------------------------ outputs
    def _outputs(self, ts: float) -> list[TrackOutput]:
        cfg = self.config
        tr = self._tracks
        if len(tr) == 0:
            return []
        live = (tr.state == _CONFIRMED) & (tr.det_index >= 0)
        show = live
        if cfg.output_lost:
            show = live | ((tr.state == _LOST) & ((ts - tr.last_seen) <= cfg.output_lost_max_s))
        idx = show.nonzero()[0]
        if idx.size == 0:
            return []
        if cfg.output_filtered_box or not cfg.output_lost:
            out_boxes = (
                kalman.cxcywh_to_xyxy(tr.mean[idx, :4]) if cfg.output_filtered_box else tr.det_box[idx]
            )
        else:
            filt = kalman.cxcywh_to_xyxy(tr.mean[idx, :4])
            out_boxes = np.where(live[idx][:, None], tr.det_box[idx], filt)
        if cfg.output_blend > 0 and not cfg.output_filtered_box and live[idx].any():
            blended = kalman.cxcywh_to_xyxy(
                costs.blend_boxes(
                    kalman.xyxy_to_cxcywh(tr.det_box[idx]),
                    tr.mean[idx, :4],
                    cfg.output_blend,
                    cfg.output_blend_shape,
                )
            )
            out_boxes = np.where(live[idx][:, None], blended, out_boxes)
        out_boxes = out_boxes.astype(np.float32)
        ids = tr.track_id[idx].tolist()
        scores = tr.score[idx].tolist()
        cls = tr.class_id[idx].tolist()
        dix = tr.det_index[idx].tolist()
        ages = (ts - tr.first_seen[idx]).tolist()
        states = ["confirmed" if x else "lost" for x in live[idx].tolist()]
        return [
            TrackOutput(ids[k], out_boxes[k], scores[k], cls[k], states[k], dix[k], ages[k])
            for k in range(idx.size)
        ]
