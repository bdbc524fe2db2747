"""``bench mot``'s Markdown: one table per group (combined figures, rank), with what each group was scored by."""

from __future__ import annotations

from typing import Any

COLS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "MT", "ML", "FP", "FN", "ms_per_frame")
HIGHER = {"HOTA", "DetA", "AssA", "MOTA", "IDF1", "MT"}


def _cell(col: str, v: Any) -> str:
    if col == "ms_per_frame":
        return f"{v:.3f}"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def group_table(group: dict[str, Any]) -> str:
    rows = group["rows"]
    best = {c: (max if c in HIGHER else min)(r[c] for r in rows) for c in COLS} if rows else {}
    head = (
        "| rank | tracker | "
        + " | ".join("ms/frame" if c == "ms_per_frame" else c for c in COLS)
        + " | note |"
    )
    lines = [head, "|---:|---|" + "---:|" * len(COLS) + "---|"]
    for r in rows:
        cells = [(f"**{_cell(c, r[c])}**" if r[c] == best[c] else _cell(c, r[c])) for c in COLS]
        note = r["note"] + (" (timing from cache)" if r["cached"] else "")
        lines.append(f"| {r['rank']} | {r['tracker']} | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any]) -> str:
    out = [
        "# Multi-scene benchmark (`roitrack bench mot`)\n",
        f"Roots: {', '.join('`' + r + '`' for r in result['roots'])}; generated {result['generated']} "
        f"({result['cpus']} CPUs, 1-min load average {result['load_avg_1m_at_end']:.1f} at the end). Every tracker "
        "gets the same detections; each group is scored by one TrackEval call (COMBINED figures) under its "
        "protocol; rank by HOTA (then IDF1, IDSW). ms/frame = time inside the tracker's update call over the "
        "group's frames (one run; 2 shared cores: compare within a table, not across runs). Peer results and their "
        f"TrackEval fields come from the cache `{result['cache']}` when their key matches (peer, version, sequence, "
        "detections hash, score rule, camera-motion file); ours is always rerun.\n",
    ]
    for g in result["groups"]:
        out.append(f"## {g['group']} ({len(g['sequences'])} sequences, {g['frames']} frames)\n")
        out.append(
            f"Protocol **{g['protocol']}**: {g['protocol_reason']}. Scores: {'; '.join(g['score_rules'])}."
        )
        if g["camera_motion_files"]:
            out.append(
                f" Camera motion from `gmc.txt` on {', '.join(g['camera_motion_files'])}: given to ours, roboflow "
                "BoT-SORT and BoxMOT BotSort / HybridSort / BoostTrack / OccluBoost (their CMC hook); the other "
                "trackers have no camera-motion compensation."
            )
        out.append("\n\n" + group_table(g))
    if result["missing"]:
        out.append("\nNot run: " + ", ".join(f"{k} ({v})" for k, v in result["missing"].items()) + "\n")
    return "\n".join(out)
