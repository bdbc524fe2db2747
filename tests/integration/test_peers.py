"""Peer benchmark on PETS09 public detections: same detections, same TrackEval call, for every tracker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "trackers", reason="peer trackers come from the 'bench' extra: pip install 'roitrack[bench]'"
)
pytest.importorskip(
    "supervision", reason="peer trackers come from the 'bench' extra: pip install 'roitrack[bench]'"
)


def test_ours_beats_both_bytetracks_on_the_same_detections(pets_sequence: Path):
    from benchmarks.peers.run import markdown_table, run_peers

    res = run_peers(
        pets_sequence,
        pets_sequence / "det" / "det.txt",
        score_scale=100.0,
        score_clip=True,
        repeats=1,
        only=["ours", "trackers_ByteTrack", "supervision_ByteTrack"],
    )
    rows = {r["key"]: r for r in res["rows"]}
    assert set(rows) == {"ours", "trackers_ByteTrack", "supervision_ByteTrack"}
    ours = rows["ours"]
    for peer in ("trackers_ByteTrack", "supervision_ByteTrack"):
        # HOTA and IDF1, the association's figures (MOTA is mostly detection: the defaults' higher score
        # thresholds, chosen across scenes, keep fewer of PETS09's weak ACF boxes than ByteTrack does)
        assert ours["HOTA"] > rows[peer]["HOTA"]
        assert ours["IDF1"] > rows[peer]["IDF1"]
        assert ours["IDSW"] < rows[peer]["IDSW"]
        assert rows[peer]["MOTA"] > 50.0  # the peers really ran (not an empty result file)
    table = markdown_table(res)
    assert table.count("\n") == 2 + 3
    assert "roitrack (ours)" in table and "ByteTrack" in table


def test_cli_writes_json_and_markdown(pets_sequence: Path, tmp_path: Path, capsys):
    from benchmarks.peers.__main__ import main

    out = tmp_path / "peers"
    rc = main(
        [
            "--seq",
            str(pets_sequence),
            "--score-scale",
            "100",
            "--score-clip",
            "--repeats",
            "1",
            "--only",
            "ours",
            "trackers_SORT",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r["key"] for r in data["rows"]] == ["ours", "trackers_SORT"]
    assert all(r["ms_per_frame"] > 0 for r in data["rows"])
    assert "| roitrack (ours) |" in out.with_suffix(".md").read_text()
    assert "trackers SORT" in capsys.readouterr().out
    assert main(["--seq", str(tmp_path), "--out", ""]) == 2  # not a sequence: clear error, exit 2


def test_embeddings_reach_ours_and_deepsort(tmp_path: Path):
    """Given embeddings, our appearance mode and DeepSORT both get them (one identity vector per object)."""
    pytest.importorskip("deep_sort_realtime", reason="peer trackers come from the 'bench' extra")
    import numpy as np

    from benchmarks.peers.__main__ import main
    from benchmarks.peers.run import run_peers
    from tests.integration.encoder_data import make_sequence

    seq = make_sequence(tmp_path / "SYN-02", frames=10, objects=3)
    rng = np.random.default_rng(0)
    ident = rng.standard_normal((3, 32)).astype(np.float32)
    # det.txt lists the objects in the same order every frame
    emb = [ident + 0.01 * rng.standard_normal((3, 32)).astype(np.float32) for _ in range(10)]
    res = run_peers(
        seq,
        seq / "det" / "det.txt",
        100.0,
        repeats=1,
        embeddings=emb,
        only=["ours", "ours_appearance", "deep_sort_realtime"],
    )
    rows = {r["key"]: r for r in res["rows"]}
    assert rows["ours_appearance"]["tracker"] == "roitrack (ours, appearance)"
    assert rows["deep_sort_realtime"]["tracker"] == "deep-sort-realtime (our embeddings)"
    for key in rows:
        assert rows[key]["IDSW"] == 0 and rows[key]["MOTA"] > 50.0, rows[key]
    assert main(["--seq", str(seq), "--encoder", "e.safetensors", "--out", ""]) == 2  # --weights missing


def test_scaling_benchmark_runs_every_tracker_on_a_synthetic_scene(tmp_path: Path):
    from benchmarks.peers.scaling import main, synthetic_frames

    frames = synthetic_frames(8, 5)
    assert len(frames) == 5 and all(f.boxes.shape[1] == 4 and len(f.boxes) <= 8 for f in frames)
    assert np.all(frames[0].boxes[:, 2:] > frames[0].boxes[:, :2])
    out = tmp_path / "scaling"
    assert main(["--objects", "4", "12", "--frames", "15", "--repeats", "1", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["objects"] for r in rows] == [4, 12]
    assert all(v > 0 for r in rows for k, v in r.items() if k != "objects")
    assert "roitrack (ours) ms/frame" in out.with_suffix(".md").read_text()
