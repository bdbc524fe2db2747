"""Track every sequence with ours and the peers (peers from the cache when they can), score each group in one
TrackEval call under its protocol, rank."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.mot.cache import DEFAULT_CACHE, CacheKey, ResultCache
from benchmarks.mot.discover import SeqEntry, discover, file_sha256
from benchmarks.peers.adapters import PeerSpec, library_version, mot_peers
from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import (
    FIGURE_KEYS,
    FrameDetections,
    combine_raw,
    evaluate_sequences,
    read_camera_motion,
    read_detections,
    results_rows,
    write_results,
)
from tracker_core.evaluation.trackeval_runner import figures, raw_from_json
from tracker_core.motion import gate_known_motion

DEFAULT_TRACKERS = (
    "ours",
    "trackers_SORT",
    "trackers_ByteTrack",
    "trackers_OC-SORT",
    "trackers_BoT-SORT",
    "supervision_ByteTrack",
    "boxmot_BotSort",
    "boxmot_ByteTrack",
    "boxmot_OcSort",
    "boxmot_HybridSort",
    "boxmot_BoostTrack",
    "boxmot_OccluBoost",
    "norfair",
)
"""The default field (``deep_sort_realtime`` only on request: without an encoder it is SORT at 50x the cost)."""

ALL_TRACKERS = (*DEFAULT_TRACKERS, "deep_sort_realtime")


def run_one(
    spec: PeerSpec,
    frames: Sequence[FrameDetections],
    frame_rate: float,
    warps: Sequence[NDArray[np.float64] | None] | None,
) -> tuple[list[str], float, str, str, bool]:
    """A fresh tracker over the whole sequence: ``(result lines, seconds inside update, name, note, used warps)``.
    Building each library's input (``prepare``) and reading its output (``collect``) are outside the clock."""
    adapter = spec.make(frame_rate)
    payloads = [adapter.prepare(f.boxes, f.scores, None) for f in frames]
    lines: list[str] = []
    spent = 0.0
    for i, payload in enumerate(payloads):
        adapter.set_warp(warps[i] if warps is not None else None)
        t0 = time.perf_counter()
        raw = adapter.update(payload, i / frame_rate)
        spent += time.perf_counter() - t0
        ids, boxes, scores = adapter.collect(raw)
        if ids:
            lines += results_rows(i + 1, ids, boxes, scores)
    used = bool(adapter.supports_warp and warps is not None)
    note = adapter.note
    if used and "gmc.txt" not in note:
        note = f"{note}, CMC from gmc.txt" if note else "CMC from gmc.txt"
    return lines, spent, adapter.name, note, used


def _score_tag(entry: SeqEntry) -> str:
    return f"{entry.protocol.name}:{file_sha256(entry.path / 'gt' / 'gt.txt')[:16]}"


def run_bench(
    roots: Sequence[str | Path],
    trackers: Sequence[str] | None = None,
    protocol: str = "auto",
    score_scale: str = "auto",
    score_clip: bool = False,
    gmc: str = "auto",
    cache_dir: str | Path | None = DEFAULT_CACHE,
    det_name: str = "det.txt",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole benchmark as one JSON-able dict (see docs/tracking.md#multi-scene-benchmark-roitrack-bench-mot)."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    keys = list(trackers) if trackers else list(DEFAULT_TRACKERS)
    unknown = [k for k in keys if k not in ALL_TRACKERS]
    if unknown:
        raise InvalidInputError(f"unknown tracker(s) {unknown}; choose from {', '.join(ALL_TRACKERS)}")
    if "ours" not in keys:
        keys.insert(0, "ours")
    if gmc not in ("auto", "off"):
        raise InvalidInputError(f"--gmc must be auto or off, got {gmc!r}")
    entries = discover(roots, protocol, score_scale, score_clip, gmc, det_name)
    cache = ResultCache(Path(cache_dir) if cache_dir is not None else None)
    versions = {k: library_version(k) for k in keys}
    missing: dict[str, str] = {}
    # per sequence, per tracker: results file, seconds, name, note, cached, key, used warps
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    tmp = tempfile.TemporaryDirectory(prefix="roitrack-benchmot-")
    try:
        for n, e in enumerate(entries, 1):
            rule = e.score_rule
            frames = read_detections(
                e.det, e.info.seq_length, "max" if rule.by_max else rule.scale, score_clip=rule.clip
            )
            warps = read_camera_motion(e.gmc, e.info.seq_length) if e.gmc is not None else None
            # ours applies it as the server does (motion only while the camera is seen moving); peers get it all
            ours_warps = (
                gate_known_motion(warps, e.info.im_width, e.info.im_height, e.info.frame_rate)
                if warps is not None
                else None
            )
            gmc_sha = file_sha256(e.gmc) if e.gmc is not None else ""
            size = (e.info.im_width, e.info.im_height)
            specs = {s.key: s for s in mot_peers(size, warps is not None)}
            per: dict[str, dict[str, Any]] = {}
            t_seq = time.perf_counter()
            for key in keys:
                if key in missing:
                    continue
                spec = specs[key]
                ck = CacheKey(key, versions[key], e.info.name, e.det_sha256, rule.describe(), gmc_sha)
                hit = cache.get(ck) if key != "ours" else None
                if hit is not None:
                    per[key] = {**hit, "cached": True, "cache_key": ck}
                    continue
                try:
                    lines, spent, name, note, used = run_one(
                        spec, frames, e.info.frame_rate, ours_warps if key == "ours" else warps
                    )
                except ImportError as exc:
                    missing[key] = f"not installed ({exc.name or exc})"
                    continue
                meta = {
                    "name": name,
                    "note": note,
                    "update_s": spent,
                    "frames": e.info.seq_length,
                    "camera_motion": used,
                    "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                }
                if key == "ours" or cache.root is None:
                    path = Path(tmp.name) / key / f"{e.info.name}.txt"
                    write_results(path, lines)
                    per[key] = {**meta, "results": str(path), "cached": False, "cache_key": None}
                else:
                    path = cache.put(ck, lines, meta)
                    per[key] = {**meta, "results": str(path), "cached": False, "cache_key": ck, "scores": {}}
            runs[e.info.name + "@" + e.group] = per
            fresh = sum(1 for v in per.values() if not v["cached"])
            say(
                f"[{n}/{len(entries)}] {e.group}/{e.info.name}: {e.info.seq_length} frames, {fresh} tracker(s) run, "
                f"{len(per) - fresh} cached ({time.perf_counter() - t_seq:.1f} s)"
            )
        groups, seq_rows = _score(entries, runs, keys, cache, missing, say)
    finally:
        tmp.cleanup()
    return {
        "roots": [str(r) for r in roots],
        "trackers": {k: {"version": versions[k]} for k in keys if k not in missing},
        "protocol": protocol,
        "score_scale": score_scale,
        "score_clip": score_clip,
        "gmc": gmc,
        "detections": det_name,
        "cache": str(cache.root) if cache.root is not None else None,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": os.getloadavg()[0],
        "groups": groups,
        "sequences": seq_rows,
        "missing": missing,
    }


def _score(
    entries: list[SeqEntry],
    runs: dict[str, dict[str, dict[str, Any]]],
    keys: list[str],
    cache: ResultCache,
    missing: dict[str, str],
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    groups: list[dict[str, Any]] = []
    seq_rows: list[dict[str, Any]] = []
    order = list(dict.fromkeys(e.group for e in entries))
    for g in order:
        members = [e for e in entries if e.group == g]
        proto = members[0].protocol
        present = [
            k for k in keys if k not in missing and all(k in runs[e.info.name + "@" + g] for e in members)
        ]
        raws: dict[str, dict[str, Any]] = {k: {} for k in present}
        to_eval: dict[str, dict[str, str]] = {}
        for k in present:
            for e in members:
                r = runs[e.info.name + "@" + g][k]
                cached_raw = r.get("scores", {}).get(_score_tag(e)) if r["cached"] else None
                if cached_raw is not None:
                    raws[k][e.info.name] = cached_raw
            if len(raws[k]) < len(members):
                to_eval[k] = {e.info.name: runs[e.info.name + "@" + g][k]["results"] for e in members}
        t0 = time.perf_counter()
        combined: dict[str, dict[str, float]] = {}
        if to_eval:
            scored = evaluate_sequences([e.path for e in members], to_eval, proto.name)
            for k, s in scored.items():
                raws[k] = s.raw
                combined[k] = s.combined
                for e in members:
                    r = runs[e.info.name + "@" + g][k]
                    if r.get("cache_key") is not None:
                        cache.add_scores(r["cache_key"], _score_tag(e), s.raw[e.info.name])
        for k in present:
            if k not in combined:
                combined[k] = combine_raw(raws[k])
        say(
            f"scored {g} ({proto.name}, {len(members)} sequences): {len(to_eval)} tracker(s) by TrackEval, "
            f"{len(present) - len(to_eval)} from cached fields ({time.perf_counter() - t0:.1f} s)"
        )
        frames_total = sum(e.info.seq_length for e in members)
        rows = []
        for k in present:
            recs = [runs[e.info.name + "@" + g][k] for e in members]
            notes = sorted({r["note"] for r in recs if r["note"]})
            rows.append(
                {
                    "key": k,
                    "tracker": recs[0]["name"],
                    **combined[k],
                    "ms_per_frame": 1000.0 * sum(r["update_s"] for r in recs) / max(frames_total, 1),
                    "note": "; ".join(notes),
                    "camera_motion_sequences": sum(1 for r in recs if r.get("camera_motion")),
                    "cached": all(r["cached"] for r in recs),
                }
            )
        rows.sort(key=lambda r: (-r["HOTA"], -r["IDF1"], r["IDSW"]))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        groups.append(
            {
                "group": g,
                "protocol": proto.name,
                "protocol_reason": proto.reason,
                "sequences": [e.info.name for e in members],
                "frames": frames_total,
                "score_rules": sorted({e.score_note for e in members}),
                "camera_motion_files": [e.info.name for e in members if e.gmc is not None],
                "rows": rows,
            }
        )
        for e in members:
            srows = []
            for k in present:
                r = runs[e.info.name + "@" + g][k]
                fig = figures(raw_from_json(raws[k][e.info.name]))
                srows.append(
                    {
                        "key": k,
                        "tracker": r["name"],
                        **{m: fig[m] for m in FIGURE_KEYS},
                        "ms_per_frame": 1000.0 * r["update_s"] / max(e.info.seq_length, 1),
                        "camera_motion": bool(r.get("camera_motion")),
                        "cached": r["cached"],
                        "results": r["results"] if r["cached"] or r.get("cache_key") is not None else None,
                    }
                )
            srows.sort(key=lambda r: -r["HOTA"])
            seq_rows.append(
                {
                    "sequence": e.info.name,
                    "group": g,
                    "path": os.path.relpath(e.path),
                    "frames": e.info.seq_length,
                    "frame_rate": e.info.frame_rate,
                    "protocol": e.protocol.name,
                    "detections": os.path.relpath(e.det),
                    "det_sha256": e.det_sha256,
                    "score_rule": e.score_rule.describe(),
                    "score_note": e.score_note,
                    "camera_motion": os.path.relpath(e.gmc) if e.gmc is not None else None,
                    "rows": srows,
                }
            )
    return groups, seq_rows
