"""The tracker's one configuration: a frozen, validated dataclass with documented defaults.

Every limit is in **seconds** (never frames), so the same config works at any frame rate and with dropped
frames. There is exactly one global default (``DEFAULT_CONFIG``); nothing is tuned per sequence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from tracker_core.errors import ConfigError


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters. Scores are detector confidences in [0, 1] (values above 1 are clipped).

    Detection split (BYTE):
        high_score: detections at or above this score take part in the first (fused-cost) stage and may
            start new tracks.
        low_score: detections in ``[low_score, high_score)`` are only used to keep confirmed tracks alive
            (second stage, motion only); anything below is ignored.
        new_track_score: minimum score for an unmatched detection to start a tentative track.

    Association (costs are in [0, 1]; a pair is matched only when its cost is <= the ceiling):
        match_cost_high: ceiling of stage 1 (high-score detections vs confirmed and lost tracks).
        match_cost_low: ceiling of stage 2 (low-score detections vs remaining confirmed / just-lost tracks).
        low_match_max_lost_s: stage 2 also offers low-score detections to tracks lost for at most this long
            (0: confirmed tracks only, as in ByteTrack).
        match_cost_tentative: ceiling of stage 3 (remaining high-score detections vs tentative tracks).
        gate_chi2: Mahalanobis gate (squared distance on the 4-d box measurement; 9.4877 = chi2 0.95, 4 dof);
            ``0`` (default) disables it: with noisy public detections (PETS09 ACF) a 95 % gate rejects true
            matches (IDF1 80 -> 54 measured); buffered IoU already bounds how far a track can jump.
        lost_buffer_rate: all stages use a *buffered* IoU: a track's predicted box and the detection are both
            enlarged by this fraction of their size per second since the track's last detection (so a track that
            coasted through an occlusion can still be picked up), capped at ``lost_buffer_max``.
        class_aware: never associate a detection with a track of another class.
        height_modulated: multiply every IoU by the overlap of the two boxes' vertical extents (Hybrid-SORT's
            height-modulated IoU): people overlapping in the image but at different depths differ in where
            their heads and feet are.
        match_cost_low_lost: stage 2 offers a weak detection to a track that has already missed frames only when
            its cost is at most this (0.4: IoU >= 0.6 with the prediction; a weak box half over a coasting track is
            more often somebody else, partly hidden). Tracks seen in the previous frame keep ``match_cost_low``.

    Weak cues (stage 1; they re-rank the pairs motion allows and never forbid one, ``costs.motion_cues``):
        stale_cost: cost per second a track has gone unmatched beyond one frame (capped at 1 s): of two tracks
            that can take one detection, the one seen a moment ago keeps it, so tracks on overlapping people do
            not trade a detection back and forth (a soft matching cascade; the hard cascade cost 0.8-1.6 HOTA).
        score_weight: cost per unit of difference between the track's last score and the detection's
            (Hybrid-SORT's confidence cue: someone walking into occlusion loses confidence gradually).
        direction_weight / direction_span_s: OC-SORT's velocity-direction consistency on the four box corners,
            weighted by the detection's score: up to ``direction_weight / 2`` off the cost of a detection lying
            the way the track moved between its latest observation and the newest one at least
            ``direction_span_s`` seconds older, as much onto one lying the other way.

    Life cycle (seconds):
        confirm_hits: matched detections a tentative track needs to be confirmed (and get an ID).
        confirm_first_frame: tracks born on a stream's first frame are confirmed at once (nothing to
            confuse them with yet).
        tentative_max_age_s: a tentative track unmatched for longer than this is dropped.
        max_lost_s: a confirmed track unmatched for longer than this is removed (and, when it has an
            embedding, moved to the long-term gallery).
        max_tracks: hard bound on live tracks per tracker; the stalest lost tracks are dropped first.

    Kalman filter (state cx, cy, w, h and their velocities; noise relative to box size):
        q_pos: position random-walk std per sqrt(second), as a fraction of the box size.
        q_vel: velocity random-walk std per sqrt(second), as a fraction of the box size per second.
        r_meas: measurement std as a fraction of the box size (at score 0).
        score_noise_weight: measurement std is multiplied by ``1 - score_noise_weight * score``, so confident
            detections pull the state harder.
        init_vel_std: initial velocity std (fraction of box size per second).

    Appearance (used only when embeddings are given). Motion decides which pairs are possible; appearance only
    re-ranks among them (stage 1) and re-identifies new tracks that could have walked from where a lost or
    gallery track was last seen. How much it counts is measured per stream, so embeddings that carry no
    information (random, constant) or are often wrong leave the motion-only result exactly unchanged:
        appearance_weight: maximum weight of the cosine distance in the stage-1 cost
            ``(1 - w) * motion + w * appearance``, applied only to pairs with motion cost <= ``match_cost_high``.
            0.6: with OSNet at 2.3 fps it gains 4.9 IDF1 on frames 1-250 (1.4 at 0.5; 0.55-0.65 the same, 0.7-0.8
            3.1), +5.9 on 1-400, with nothing else changed (see docs/tracking.md).
        appearance_margin_ref: the weight rises linearly from 0 at ``appearance_min_margin`` to its maximum at
            this *appearance margin* (``costs.appearance_margin``), measured on pairs motion is sure about
            (mutual best, cost <= ``appearance_confident_cost``): mean cosine distance to the other detections
            minus distance to the sure match, smoothed over frames (``appearance_margin_ema``). Re-identification
            needs at least half of it. 0.4: embeddings must separate people by a wide margin to earn the full
            weight (a real encoder on PETS09 measures 0.13 and gets a weight of 0.12, which we measured harmless;
            at 0.27 it cost 8 IDF1 points).
        appearance_min_margin: below this margin appearance is off (weight exactly 0): random embeddings give
            a margin of ~0, constant ones exactly 0.
        appearance_confident_cost: motion cost below which a mutual best pair counts as sure.
        appearance_margin_ema: smoothing of the margin across frames (new = ema * old + (1 - ema) * frame's).
        appearance_error_ema: discount per frame of the counts behind the misleading rate (and of the
            disagreement and confusion rates; slower: one crowded frame must not switch appearance off or on).
        appearance_gate: cosine distance above which an embedding *disagrees* with a sure motion match, and
            within which it *agrees* with another object.
        appearance_max_misleading: the weight scales down (``costs.reliability``) to 0 at this smoothed rate of
            *misleading* sure matches (``costs.misleading_counts``: the embedding disagrees with its partner and
            agrees with a rival, e.g. a wrong identity naming a visible person), ``(misleading + 1) / (judged +
            2)`` of the discounted counts, so 1/2 before any evidence: appearance earns its weight on each stream.
            0.15: 30-50 % wrong identities leave motion alone (20 % still gains a little); false-positive boxes
            with embeddings like nobody's do not count against perfect ones (the former rule, the share of sure
            matches that merely disagree, held perfect embeddings on PETS09's loose public boxes to +4.0-5.2
            instead of +11.9 IDF1 at 3.5 fps).
        appearance_max_confusion: smoothed rank-1 confusion rate (``costs.confusion_counts``: on sure motion
            matches, another object looks more alike than the true partner) at which appearance is switched off;
            the weight, crossing decisions and re-identification all scale down with it. 1 (default): off. On
            PETS09 it does not tell a real encoder that finds pedestrians alike (0.025 at the end of frames 1-250)
            from ground-truth embeddings (0.011), and rose higher for the latter where people stand in a group;
            the stricter ``appearance_margin_ref`` does (margin 0.13 vs 0.44-0.52), see docs/tracking.md.
        appearance_calibrated: read every appearance threshold on the stream's own distance scale
            (``costs.calibrate``: its typical sure-match distance becomes 0, its typical distance between two objects
            seen at once 0.5), and decide how much appearance counts from its *separation* (``costs.separation``: a
            rank statistic of sure-match vs rival distances, a lower confidence bound) instead of the raw margin.
            A ReID model's people sit 0.15-0.2 apart where the oracle's sit 0.5 apart; on the raw scale OSNet never
            earned a weight at 2.3 and 1.4 fps (see docs/tracking.md, "Appearance on real embeddings").
        appearance_calibration_ema: discount per sure match of the distance histograms behind the scale and the
            separation (counted in judged matches, not frames: a 1 fps camera learns as fast per match).
        appearance_min_separation / appearance_separation_ref: the re-ranking weight rises linearly from 0 at
            ``appearance_min_separation`` to ``appearance_weight`` at ``appearance_separation_ref`` (calibrated mode).
        appearance_separation_z: the separation is the measured ``2 * AUC - 1`` minus this many standard errors
            under chance, so a few lucky frames prove nothing (random embeddings stay below 0).
        appearance_evidence_ema: discount per judged sure match of the misleading, confusion and disagreement
            counts (calibrated mode).
        appearance_veto_max_error / appearance_veto_dist / appearance_veto_proven / appearance_veto_rival: while the
            stream's disagreement rate (sure motion matches farther than ``appearance_gate``, ``(disagree + 1) /
            (sure + 2)`` of counts discounted per match) is at most ``appearance_veto_max_error``, a *lost* track
            (and with ``appearance_veto_proven`` also a track whose memory has proven consistent, ``app_dev <=
            appearance_consistent_dev``) may not take a detection farther than ``appearance_veto_dist`` (calibrated:
            0.5 is the stream's typical distance between two objects; 0: ``appearance_gate``), unless motion is
            sure and unambiguous, and with ``appearance_veto_rival`` only where a rival claims the pair
            (``costs.rival_agrees``: the detection looks like another track, or the track like another detection):
            a loose or false-positive box that looks like nobody is left to motion. 0 disables it. 0.1 / 0.4 / on /
            on: with OSNet +1.4 to +4.9 IDF1 on frames 1-250 at 7, 2.3 and 1.4 fps, never an ID switch more
            (without the veto it cost 0.8 at 2.3 fps; 0.35 cost 1.5 on 251-400 at 7 fps, 0.6 cost 0.8 on 1-250 at
            2.3 fps; 0.5 let two walkers of the synthetic test stream trade IDs); without the rival condition
            perfect embeddings lost 1.2 IDF1 on 251-400. Random, constant and 30 % wrong identities never reach a
            rate of 0.1, so they are untouched (see docs/tracking.md, "Appearance on real embeddings").
        appearance_decisive_dist / appearance_decisive_gap: per-pair decisions in crossings
            (``costs.decisive_veto``): where motion finds several candidates plausible for one detection (or one
            track), and the closest in appearance is within ``appearance_decisive_dist``, candidates farther than
            it by more than ``appearance_decisive_gap`` are ruled out; applies only while the re-ranking weight is
            above 0 (a wide enough margin *and* a misleading rate under ``appearance_max_misleading``: a wrong
            identity agrees with the person it names, who may be the rival), and only through tracks whose memory
            has proven consistent (``app_dev`` <= ``appearance_consistent_dev``). ``appearance_decisive_dist = 0``
            disables it.
        appearance_decisive_motion_gap: a crossing decision never rules out a candidate whose motion cost
            (1 - IoU) is lower than the decided pair's by more than this: appearance settles what motion leaves
            open and does not overrule what it clearly prefers. 0.4: on every third PETS09 frame one wrong
            identity naming a nearby person swapped two tracks for good (a seed at 20 % wrong: -4.1 IDF1; with
            the gap -0.1), and perfect embeddings keep every gain (0.2 cost 2.6 ID switches on frames 1-250).
        appearance_consistent_dev / appearance_consistency_ema: each track smooths (factor
            ``appearance_consistency_ema`` per match) the cosine distance of its observations to its memory,
            starting at 1 (unproven); it may decide a crossing once that is <= ``appearance_consistent_dev``:
            a track started on a wrong embedding, or fed wrong ones, stays out of decisions.
        memory_keep_dist: a proven track (``app_dev <= appearance_consistent_dev``) does not fold into its memory
            an observation farther than this from it, and counts consecutive such observations that agree with
            each other (``alt_streak``, another object it may have switched to); 1 (default): off.
        appearance_switch_streak: when > 0 (with ``memory_keep_dist`` < 1), a track with that streak may not take
            a detection that again looks like the other object and not like its memory (``costs.switch_veto``),
            even where motion is sure. Off by default: on the frames 1-250 oracle it lifts perfect embeddings
            well above the default (with ``reid_max_misleading = 1``), but wrong identities then cost up to 8.8
            points (see docs/tracking.md).
        ema_alpha: embedding memory EMA factor (new = alpha * old + (1 - alpha) * observed).
        bank_size: optional per-track bank of recent embeddings (distance = min over EMA and bank); 0 by
            default: a bank lets one stray observation make a track look like another object.

    Re-identification (new tracks, at confirmation, once embeddings are informative: margin >= half of
    ``appearance_margin_ref`` and misleading rate <= ``reid_max_misleading``):
        reid_lost: also re-link lost tracks still in the table (not only gallery entries).
        reid_max_misleading: re-identification needs the smoothed misleading rate at most this (and the margin at
            least half of ``appearance_margin_ref``); the new track's memory *and* its latest observation must
            both be within ``gallery_max_dist`` of the candidate.
        reid_min_separation: in calibrated mode, re-identification needs the stream's separation at least this
            (instead of half of ``appearance_margin_ref``).
        reid_max_false_match: in calibrated mode, a candidate's distance must be one that two *different* objects
            on this stream reach at most this often (``costs.false_match_rate`` of the rival histogram): in a
            look-alike world (a colour histogram on people in dark clothes) nobody is re-identified.
        reid_exits / reid_edge_margin: with ``reid_exits`` off (default), an object last seen within
            ``reid_edge_margin`` of its width of the field of view's edge (the extent of every box seen) and moving
            out through it (``costs.left_view``) is gone, not hidden, and is not re-identified.
        reid_min_gap: a candidate must be closer in appearance than every rival (the other candidates and every
            object visible now) by at least this cosine distance (``costs.distinct_enough``): among look-alikes
            nobody is re-identified.
        reid_rival_query: the objects visible now are rivals read the way the candidates are (the largest distance
            of the new track's memory and latest observation), not by its memory alone. On by default; off, a new
            track whose latest observation was a little farther from its gallery candidate than its memory lost
            to a rival measured on the memory only, and a person hidden 2.6 s behind the PETS09 sign at 2.3 fps
            came back under a new ID (IDF1 92.2 -> 96.4 with the ROI encoder on frames 251-400, step 3; OSNet on
            frames 1-400, step 3: +5.8 -> +12.3; nothing worse anywhere, see docs/tracking.md).
        reid_repair_hits: identity repair (a takeover undone). A confirmed track whose observation names one
            gallery identity on this many consecutive matched frames takes that identity, and its own identity
            goes to the gallery with the memory it had when the streak began (where a later return can find it).
            Each frame's observation must qualify as a re-identification does (within ``gallery_max_dist``,
            walking distance, false-match rate, not gone out of view) and beat, by ``reid_min_gap``, every other
            candidate, every other object visible now *and the track's own memory* as it was when the streak
            began. 0: off. 3 (default, as ``confirm_hits``): on PETS09 at 7 fps a person who steps out from behind
            another at frame 31 (OSNet first tells the two apart at frame 36) gets his own ID back at frame 40
            (frames 1-250: OSNet +1.8 -> +4.7 IDF1, perfect embeddings +1.8 -> +5.0; docs/tracking.md); random,
            constant and colour embeddings never trigger it there.
        reid_max_speed / reid_min_radius: a candidate last seen at box B, ``dt`` seconds ago, qualifies only if
            the new track's centre is within ``reid_min_radius + reid_max_speed * dt`` box heights of B's.
        gallery_size: maximum removed tracks kept for re-identification.
        gallery_max_age_s: gallery entries older than this are forgotten.
        gallery_max_dist: every recent observation of the new track must be within this cosine distance of the
            candidate's memory.

    Output:
        output_lost: also output lost tracks' predicted boxes (state ``"lost"``, ``det_index = -1``).
        output_lost_max_s: ... but only for this long after their last detection.
        output_filtered_box: output the Kalman-filtered box instead of the matched detection's box.
        output_blend: a matched track's output box is ``(1 - a) * detection + a * filtered`` in (cx, cy, w, h)
            with ``a = output_blend`` (0: the detection's box exactly); detection boxes jitter and, where two people
            overlap, alternately cover one or both, which the smoothed box rides out.
        output_blend_shape: ``a`` rises to 1 as the detection's aspect ratio departs from the track's, reaching 1
            at ``|log(aspect ratio)| = output_blend_shape`` (a box suddenly much wider than the person is a merged
            detection); 0: off.
    """

    high_score: float = 0.6
    low_score: float = 0.1
    new_track_score: float = 0.7
    match_cost_high: float = 0.8
    match_cost_low: float = 0.6
    match_cost_tentative: float = 0.7
    low_match_max_lost_s: float = 1.0
    gate_chi2: float = 0.0
    lost_buffer_rate: float = 0.4
    lost_buffer_max: float = 1.0
    class_aware: bool = True
    height_modulated: bool = True
    direction_weight: float = 0.2
    direction_span_s: float = 0.1
    stale_cost: float = 0.5
    score_weight: float = 0.3
    match_cost_low_lost: float = 0.4

    confirm_hits: int = 3
    confirm_first_frame: bool = True
    tentative_max_age_s: float = 0.2
    max_lost_s: float = 1.5
    max_tracks: int = 1024

    q_pos: float = 0.05
    q_vel: float = 0.3
    r_meas: float = 0.1
    score_noise_weight: float = 0.5
    init_vel_std: float = 0.5

    appearance_weight: float = 0.6
    appearance_calibrated: bool = True
    appearance_calibration_ema: float = 0.995
    appearance_min_separation: float = 0.3
    appearance_separation_ref: float = 0.8
    appearance_separation_z: float = 2.0
    appearance_evidence_ema: float = 0.98
    appearance_margin_ref: float = 0.4
    appearance_confident_cost: float = 0.3
    appearance_margin_ema: float = 0.8
    appearance_min_margin: float = 0.05
    appearance_gate: float = 0.35
    appearance_veto_max_error: float = 0.1
    appearance_veto_proven: bool = True
    appearance_veto_dist: float = 0.4
    appearance_veto_rival: bool = True
    appearance_decisive_dist: float = 0.2
    appearance_decisive_gap: float = 0.2
    appearance_decisive_motion_gap: float = 0.4
    appearance_consistent_dev: float = 0.1
    appearance_consistency_ema: float = 0.7
    memory_keep_dist: float = 1.0
    appearance_switch_streak: int = 0
    appearance_max_misleading: float = 0.15
    appearance_max_confusion: float = 1.0
    appearance_error_ema: float = 0.95
    ema_alpha: float = 0.9
    bank_size: int = 0

    gallery_size: int = 64
    gallery_max_age_s: float = 60.0
    gallery_max_dist: float = 0.25
    reid_lost: bool = True
    reid_max_misleading: float = 0.1
    reid_min_separation: float = 0.55
    reid_max_false_match: float = 0.02
    reid_exits: bool = False
    reid_edge_margin: float = 0.5
    reid_max_speed: float = 1.0
    reid_min_radius: float = 1.0
    reid_min_gap: float = 0.1
    reid_rival_query: bool = True
    reid_repair_hits: int = 3

    output_lost: bool = False
    output_lost_max_s: float = 0.5
    output_filtered_box: bool = False
    output_blend: float = 0.4
    output_blend_shape: float = 0.6

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ConfigError(f"TrackerConfig.{f.name} must be a bool, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"TrackerConfig.{f.name} must be a number, got {v!r}")
            if not (v == v) or v in (float("inf"), float("-inf")) or v < 0:
                raise ConfigError(f"TrackerConfig.{f.name} must be finite and >= 0, got {v!r}")
        for name in (
            "high_score",
            "low_score",
            "new_track_score",
            "score_noise_weight",
            "ema_alpha",
            "appearance_margin_ema",
            "appearance_error_ema",
            "appearance_consistency_ema",
            "appearance_calibration_ema",
            "appearance_evidence_ema",
            "appearance_veto_max_error",
            "appearance_veto_dist",
            "appearance_min_separation",
            "appearance_separation_ref",
            "reid_min_separation",
            "reid_max_false_match",
        ):
            if getattr(self, name) > 1:
                raise ConfigError(f"TrackerConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.low_score > self.high_score:
            raise ConfigError(f"low_score ({self.low_score}) must be <= high_score ({self.high_score})")
        for name in ("confirm_hits", "max_tracks", "bank_size", "gallery_size", "reid_repair_hits"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ConfigError(f"TrackerConfig.{name} must be an integer, got {getattr(self, name)!r}")
        if self.confirm_hits < 1 or self.max_tracks < 1:
            raise ConfigError("confirm_hits and max_tracks must be >= 1")
        if self.appearance_min_separation > self.appearance_separation_ref:
            raise ConfigError(
                f"appearance_min_separation ({self.appearance_min_separation}) must be <= appearance_separation_ref "
                f"({self.appearance_separation_ref})"
            )
        if self.r_meas <= 0:
            raise ConfigError("r_meas must be > 0")

    def replace(self, **changes: Any) -> TrackerConfig:
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown TrackerConfig fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackerConfig:
        """Build from a mapping (e.g. parsed JSON), rejecting unknown keys."""
        return DEFAULT_CONFIG.replace(**data)

    @classmethod
    def from_json_file(cls, path: str) -> TrackerConfig:
        """The defaults with the overrides of a JSON file (``--config``); ``ConfigError`` naming the file."""
        import json
        from pathlib import Path

        try:
            data = json.loads(Path(path).read_text())
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object of TrackerConfig fields")
            return cls.from_dict(data)
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"--config {path}: {exc}") from None


DEFAULT_CONFIG = TrackerConfig()
