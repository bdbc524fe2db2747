"""``scripts/takeover_bound.py`` on the real PETS09 sequence: the takeover at frame 31 (person 9 emerges behind
person 15, and person 15's track carries on with him) read off motion only's result with ground-truth
embeddings."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.oracle import EmbeddingSpec, gt_identities, oracle_embeddings
from tracker_core.evaluation import read_detections, read_gt, read_seqinfo, track_sequence, write_results
from tracker_core.evaluation.embedding_file import save_embeddings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "takeover_bound.py"


def test_ceilings_fall_as_the_takeover_is_undone_later_and_perfect_embeddings_favour_the_person(
    pets_sequence: Path, tmp_path: Path
) -> None:
    info = read_seqinfo(pets_sequence)
    frames = read_detections(pets_sequence / "det" / "det.txt", info.seq_length, 100, score_clip=True)
    gt = read_gt(pets_sequence / "gt" / "gt.txt")
    emb = oracle_embeddings(gt_identities(frames, gt), EmbeddingSpec("oracle"), 0, 16)
    assert emb is not None
    save_embeddings(tmp_path / "ids.npz", frames, [np.asarray(e, np.float32) for e in emb], {"kind": "reid"})
    write_results(tmp_path / "motion.txt", track_sequence(frames, info.frame_rate).lines)

    argv = ["--seq", str(pets_sequence), "--result", str(tmp_path / "motion.txt")]
    argv += ["--embeddings", str(tmp_path / "ids.npz"), "--emerging", "9", "--occluder", "15"]
    argv += ["--first", "31", "--last", "40", "--score-clip", "--json"]
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    idf1 = out["IDF1"]
    ks = [idf1[f"K{k}"] for k in range(31, 41)]
    # relabelling can only help, and leaving more of the emerging person's boxes on the occluder's ID only hurts
    assert idf1["ceiling"] > idf1["result"]
    assert idf1["result"] <= idf1["kept"] < idf1["ceiling"]  # the takeover kept costs something
    assert all(a >= b for a, b in itertools.pairwise(ks)), ks
    assert ks[0] <= idf1["ceiling"] and ks[-1] < idf1["ceiling"]
    # ground-truth embeddings: each frame's detection of person 9 is his own vector, far from person 15's
    assert [r["frame"] for r in out["per_frame"]] == list(range(31, 41))
    assert all(r["nearest_own"] < 1e-6 < r["nearest_occluder"] for r in out["per_frame"])

    bad = subprocess.run(
        [sys.executable, str(SCRIPT), *argv[:-5], "--first", "40", "--last", "31"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--first" in bad.stderr
