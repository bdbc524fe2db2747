"""``roitrack eval-det`` on real data: the public ACF detections of PETS09 frames 251-400 score the issue's
reference VOC AP50 0.930 against the scored gt rows; a detector and a det.txt in one table; ignore regions;
YOLO datasets; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from roitrack_cli.main import main
from tracker_core.evaluation.mot_slice import slice_sequence

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def test_split(pets_sequence: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slice_sequence(pets_sequence, 251, 400, tmp_path_factory.mktemp("s") / "pets-test")


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_public_detections_reference_ap(test_split: Path, capsys) -> None:
    det = test_split / "det" / "det.txt"
    assert (
        main(
            [
                "eval-det",
                "--seq",
                str(test_split),
                "--det",
                str(det),
                "--score-scale",
                "100",
                "--score-clip",
                "--json",
            ]
        )
        == 0
    )
    row = _json(capsys)["rows"][0]
    assert row["frames"] == 150 and row["gt_boxes"] == 852 and row["detections"] == 1088
    assert row["voc"]["ap50"] == pytest.approx(0.930, abs=5e-4)  # the reference the issue gives
    assert row["coco"]["ap50"] == pytest.approx(0.925, abs=5e-3)
    assert 0 < row["coco"]["ap50_95"] < row["coco"]["ap50"]
    assert row["coco"]["ap_small"] == -1.0 and row["coco"]["ap_large"] == -1.0  # every PETS person is medium
    assert row["voc"]["recall"] == pytest.approx(0.946, abs=1e-3)  # all detections (min score 0)


def test_ignore_regions_are_honoured(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    """Frames 1-250 hold 174 unscored (flag 0) gt rows: detections on them are no false positives."""
    seq = slice_sequence(pets_sequence, 1, 250, tmp_path / "train")
    det = seq / "det" / "det.txt"
    assert (
        main(
            [
                "eval-det",
                "--seq",
                str(seq),
                "--det",
                str(det),
                "--score-scale",
                "100",
                "--score-clip",
                "--json",
            ]
        )
        == 0
    )
    with_ignore = _json(capsys)["rows"][0]
    assert with_ignore["ignore_regions"] == 174
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    gt[:, 6] = 1  # every row scored: the same detections now miss and hit people that were not scored
    (seq / "gt" / "gt.txt").unlink()
    np.savetxt(seq / "gt" / "gt.txt", gt, delimiter=",", fmt="%g")
    assert (
        main(
            [
                "eval-det",
                "--seq",
                str(seq),
                "--det",
                str(det),
                "--score-scale",
                "100",
                "--score-clip",
                "--json",
            ]
        )
        == 0
    )
    all_scored = _json(capsys)["rows"][0]
    assert all_scored["ignore_regions"] == 0 and all_scored["gt_boxes"] == with_ignore["gt_boxes"] + 174
    assert with_ignore["voc"]["ap50"] == pytest.approx(0.858, abs=1e-3)
    assert with_ignore["voc"]["fp"] < all_scored["voc"]["fp"]  # ...or they would count against it


def test_detector_and_file_in_one_table(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    from tracker_core.detector import build_detector
    from tracker_core.detector.weights_io import save_weights

    seq = slice_sequence(pets_sequence, 251, 254, tmp_path / "few")
    det = build_detector("yolov7-tiny", nc=1)
    w = tmp_path / "random.safetensors"
    save_weights(w, det.net.state_dict(), det.meta)
    args = ["eval-det", "--seq", str(seq), "--weights", str(w), "--det", str(seq / "det" / "det.txt")]
    args += ["--score-scale", "100", "--score-clip", "--size", "320"]
    assert main([*args, "--json"]) == 0
    rows = _json(capsys)["rows"]
    assert rows[0]["name"] == "random.safetensors (detector, 320)" and rows[1]["name"].endswith(
        "det.txt (file)"
    )
    assert len(rows) == 2 and rows[0]["operating_threshold"] == 0.25 and rows[1]["operating_threshold"] == 0.0
    assert rows[1]["voc"]["ap50"] > rows[0]["voc"]["ap50"]  # random weights detect nothing useful


def test_yolo_dataset_split(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    from tests.integration.test_train_detector import _yolo_from_mot
    from tracker_core.detector import build_detector
    from tracker_core.detector.weights_io import save_weights

    yaml = _yolo_from_mot(pets_sequence, tmp_path / "yolo", range(300, 304))
    det = build_detector("yolov7-tiny", nc=1)
    w = tmp_path / "random.safetensors"
    save_weights(w, det.net.state_dict(), det.meta)
    assert main(["eval-det", "--yolo", str(yaml), "--weights", str(w), "--size", "160", "--json"]) == 0
    out = _json(capsys)
    assert "split val (2 images)" in out["data"] and out["rows"][0]["frames"] == 2


def test_bad_input_exits_2(test_split: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval-det", "--seq", str(test_split)]) == 2
    assert "--weights" in capsys.readouterr().err
    assert main(["eval-det", "--seq", str(tmp_path), "--det", "x"]) == 2
    assert "seqinfo.ini" in capsys.readouterr().err
    bad = tmp_path / "det.txt"
    bad.write_text("1,-1,10,10,20,40,150\n")
    assert (
        main(["eval-det", "--seq", str(test_split), "--det", str(bad)]) == 2
    )  # a score of 150 without a scale
    assert "--score-scale" in capsys.readouterr().err
