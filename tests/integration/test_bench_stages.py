"""``roitrack bench stages`` and ``roitrack bench floor`` end to end on tiny sizes: JSON with sane values."""

from __future__ import annotations

import json
import math

from roitrack_cli import main as cli

STAGES = (
    "decode",
    "letterbox",
    "forward",
    "nms",
    "roi_align",
    "encoder",
    "camera_motion",
    "tracking",
    "serialize",
)


def _run(argv: list[str], capsys) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_stages_reports_every_stage_per_frame(tmp_path, capsys):
    out = tmp_path / "bench"
    r = _run(
        [
            "bench",
            "stages",
            "--arch",
            "yolov7-tiny",
            "--size",
            "160",
            "--frames",
            "2",
            "--dets",
            "12",
            "--json",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert r["bench"] == "stages" and r["stages"] == list(STAGES)
    (row,) = r["results"]
    assert row["arch"] == "yolov7-tiny" and row["size"] == 160 and row["frames"] == 2
    assert all(row["ms"][s] > 0 for s in STAGES)
    assert math.isclose(row["total_ms"], sum(row["ms"].values()), rel_tol=1e-9)
    assert math.isclose(sum(row["share"].values()), 1.0, rel_tol=1e-9)
    assert 0 < row["tracking_share"] < 1 and row["fps"] > 0
    assert 0 < row["camera_motion_share"] < 1 and r["target_camera_motion_share"] == 0.10
    assert 0 < row["frame_ms_min"] <= row["frame_ms_median"]
    assert 0 < row["tracks"] <= 12  # the tracker holds the scene's objects
    table = (out / "stages.md").read_text()
    assert "| yolov7-tiny | 160 |" in table and "tracking share" in table


def test_floor_relates_flops_to_a_measured_matmul_rate(tmp_path, capsys):
    r = _run(
        ["bench", "floor", "--size", "160", "--frames", "2", "--dets", "8", "--json", "--out", str(tmp_path)],
        capsys,
    )
    assert r["flops_per_frame"] > 1e8 and r["matmul_gflops_per_s"] > 0 and r["encoder_gflops_per_frame"] > 0
    for key in ("forward_fraction_b1", "forward_fraction_b4", "pipeline_fraction"):
        assert 0 < r[key] < 2, (
            key
        )  # a share of the machine's matmul rate (noise may lift it a little above 1)
    # the whole pipeline does more than the forward: it cannot turn more of the machine into detector FLOPs
    assert r["pipeline_ms_per_frame"] > r["forward_ms_b1"] * 0.5
    assert r["floor_ms_per_frame"] > 0
    assert (tmp_path / "floor.md").exists()
