"""``slice_sequence`` / ``roitrack slice-seq``: frame ranges of a MOTChallenge sequence, renumbered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roitrack_cli.main import main
from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import read_detections, read_gt, read_seqinfo
from tracker_core.evaluation.mot_slice import parse_frame_range, slice_sequence


def _make_seq(root: Path, n: int = 6) -> Path:
    seq = root / "SEQ"
    (seq / "img1").mkdir(parents=True)
    for f in range(1, n + 1):
        (seq / "img1" / f"{f:06d}.jpg").write_bytes(bytes([f]) * 10)
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=SEQ\nimDir=img1\nframeRate=7\nseqLength={n}\nimWidth=64\nimHeight=48\nimExt=.jpg\n"
    )
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(
        "".join(f"{f},{k},{f},{k},10,20,1,-1,-1,-1\n" for f in range(1, n + 1) for k in (1, 2))
    )
    (seq / "det").mkdir()
    (seq / "det" / "det.txt").write_text(
        "".join(f"{f},-1,{f},0,10,20,{50 + f},-1,-1,-1\n" for f in range(1, n + 1))
    )
    return seq


def test_slice_renumbers_frames_and_keeps_rows(tmp_path: Path) -> None:
    seq = _make_seq(tmp_path)
    out = slice_sequence(seq, 3, 5, tmp_path / "part")
    info = read_seqinfo(out)
    assert (info.seq_length, info.frame_rate, info.im_width, info.im_height) == (3, 7.0, 64, 48)
    assert info.name == "SEQ-f3-5"
    # image k of the slice is frame first + k - 1 of the source
    for k in range(1, 4):
        assert (out / "img1" / f"{k:06d}.jpg").read_bytes() == bytes([k + 2]) * 10
    gt = read_gt(out / "gt" / "gt.txt")
    assert gt.shape[0] == 6
    np.testing.assert_array_equal(gt[:, 0], [1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(gt[:, 2], [3, 3, 4, 4, 5, 5])  # left = source frame number
    dets = read_detections(out / "det" / "det.txt", 3, score_scale=100)
    assert [float(d.boxes[0, 0]) for d in dets] == [3.0, 4.0, 5.0]
    np.testing.assert_allclose([float(d.scores[0]) for d in dets], [0.53, 0.54, 0.55], rtol=1e-6)


def test_two_slices_partition_the_sequence(tmp_path: Path) -> None:
    seq = _make_seq(tmp_path)
    a = slice_sequence(seq, 1, 4, tmp_path / "a", copy_images=True)
    b = slice_sequence(seq, 5, 6, tmp_path / "b")
    n_rows = len(read_gt(a / "gt" / "gt.txt")) + len(read_gt(b / "gt" / "gt.txt"))
    assert n_rows == len(read_gt(seq / "gt" / "gt.txt"))
    assert not (a / "img1" / "000001.jpg").is_symlink()
    assert (b / "img1" / "000001.jpg").is_symlink()


@pytest.mark.parametrize("text", ["5", "a-b", "0-3", "4-2", "1-2-3"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--frames"):
        parse_frame_range(text)


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = _make_seq(tmp_path)
    assert main(["slice-seq", str(seq), "--frames", "3-9", "--out", str(tmp_path / "x")]) == 2
    assert "only 6 frames" in capsys.readouterr().err
    assert main(["slice-seq", str(seq), "--frames", "2-3", "--out", str(tmp_path / "y")]) == 0
    assert main(["slice-seq", str(seq), "--frames", "2-3", "--out", str(tmp_path / "y")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_pets_split_feeds_eval(pets_sequence: Path, tmp_path: Path) -> None:
    out = slice_sequence(pets_sequence, 251, 400, tmp_path / "test")
    assert read_seqinfo(out).seq_length == 150
    gt = read_gt(out / "gt" / "gt.txt")
    full = read_gt(pets_sequence / "gt" / "gt.txt")
    assert len(gt) == int((full[:, 0] >= 251).sum())
    assert gt[:, 0].min() == 1 and gt[:, 0].max() <= 150


def test_step_keeps_every_nth_frame_at_a_lower_frame_rate(tmp_path: Path) -> None:
    seq = _make_seq(tmp_path, n=7)
    out = slice_sequence(seq, 2, 7, tmp_path / "s2", step=2)  # source frames 2, 4, 6
    info = read_seqinfo(out)
    assert (info.seq_length, info.frame_rate, info.name) == (3, 3.5, "SEQ-f2-7-s2")
    for k, frame in enumerate((2, 4, 6), 1):
        assert (out / "img1" / f"{k:06d}.jpg").read_bytes() == bytes([frame]) * 10
    assert not (out / "img1" / "000004.jpg").exists()
    gt = read_gt(out / "gt" / "gt.txt")
    np.testing.assert_array_equal(gt[:, 0], [1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(gt[:, 2], [2, 2, 4, 4, 6, 6])  # left = source frame number
    dets = read_detections(out / "det" / "det.txt", 3, score_scale=100)
    assert [float(d.boxes[0, 0]) for d in dets] == [2.0, 4.0, 6.0]


@pytest.mark.parametrize("step", [0, -1])
def test_bad_step_exits_2(tmp_path: Path, step: int, capsys: pytest.CaptureFixture[str]) -> None:
    seq = _make_seq(tmp_path)
    args = ["slice-seq", str(seq), "--frames", "1-6", "--step", str(step), "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "--step" in capsys.readouterr().err
