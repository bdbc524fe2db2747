"""``roitrack bench reid`` end to end on a tiny ONNX model against a real ``roitrack serve`` process: the
ReID figures come from the server's metrics and add up (the figures themselves are machine-dependent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roitrack_cli import main as cli
from tests.reid_models import colour_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_bench_reid_reports_cost_per_frame_crop_and_share(tmp_path: Path, capsys):
    model = colour_model(tmp_path / "colour.onnx")
    argv = ["bench", "reid", "--reid-model", str(model), "--size", "160", "--streams", "4", "--dets", "6"]
    argv += ["--duration", "2", "--warmup", "0.5", "--json", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert [row["streams"] for row in r["results"]] == [1, 4]
    for row in r["results"]:
        reid, roi = row["reid"], row["roi"]
        assert reid["answered"] > 0 and reid["errors"] == 0 and roi["answered"] > 0
        # every client box of every frame was embedded (6, less the rare box that left the frame entirely)
        assert 5.5 < reid["crops_per_frame"] <= 6
        assert reid["reid_ms_per_frame"] > 0 and roi["stage_ms"]["reid"] == 0
        assert reid["reid_ms_per_crop"] == pytest.approx(reid["reid_ms_per_frame"] / reid["crops_per_frame"])
        assert reid["stage_ms"]["inference"] == 0 < roi["stage_ms"]["inference"]  # client boxes: no forward
        assert 0 < row["reid_share"] < 1 and 0 < row["reid_share_with_detector"] < row["reid_share"]
    assert (tmp_path / "reid.md").is_file() and "reid ms/crop" in (tmp_path / "reid.md").read_text()
