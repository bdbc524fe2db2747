"""Client frame sources, wire frames and MOT output (no server, no torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from client.results import mot_lines
from client.sources import SourceFrame, open_source, read_mot_detections
from client.stream import StreamConfig, build_frame, build_open
from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_cli.main import main
from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation import ScoreRule


def _folder(tmp_path: Path, n: int = 3) -> Path:
    seq = tmp_path / "seq"
    (seq / "img1").mkdir(parents=True)
    (seq / "det").mkdir()
    for i in range(1, n + 1):
        img = np.full((24, 32, 3), 40 * i, np.uint8)
        cv2.imwrite(str(seq / "img1" / f"{i:06d}.jpg"), img)
    (seq / "det" / "det.txt").write_text("1,-1,1,2,10,20,87.5,-1,-1,-1\n3,-1,5,5,4,4,20,-1,-1,-1\n")
    (seq / "seqinfo.ini").write_text("[Sequence]\nframeRate=7\n")
    return seq


def test_image_folder_with_detections(tmp_path: Path) -> None:
    src = open_source(str(_folder(tmp_path)), detections="auto", score_rule=ScoreRule(100.0))
    frames = list(src)
    assert src.fps == 7 and [f.index for f in frames] == [1, 2, 3]
    assert frames[0].encoded is not None and frames[0].encoded[:2] == b"\xff\xd8"
    assert frames[1].timestamp == pytest.approx(2 / 7)
    b, s, _ = frames[0].detections  # type: ignore[misc]
    np.testing.assert_allclose(b, [[1, 2, 11, 22]])
    np.testing.assert_allclose(s, [0.875])  # 0-100 scores scaled to [0, 1] by the explicit --score-scale 100
    assert len(frames[1].detections[0]) == 0  # type: ignore[index]


def test_the_image_folder_itself_finds_its_sequence_rate_and_detections(tmp_path: Path) -> None:
    """Issue 19 (3): `--source SEQ/img1` (the folder that holds the frames) stamped frames at a silent 10 fps
    because seqinfo.ini lies beside it, not in it; now SEQ and SEQ/img1 give the same frames, times and boxes."""
    seq = _folder(tmp_path)
    whole = list(open_source(str(seq), detections="auto", score_rule=ScoreRule(100.0)))
    src = open_source(str(seq / "img1"), detections="auto", score_rule=ScoreRule(100.0))
    inner = list(src)
    assert src.fps == 7 and not src.notices  # type: ignore[attr-defined]
    assert [(f.index, f.timestamp, f.encoded) for f in inner] == [
        (f.index, f.timestamp, f.encoded) for f in whole
    ]
    for a, b in zip(inner, whole, strict=True):
        assert a.detections is not None and b.detections is not None
        assert a.detections[0].tobytes() == b.detections[0].tobytes()
    # a seqinfo.ini beside a folder that is not its imDir says nothing about that folder
    (seq / "other").mkdir()
    cv2.imwrite(str(seq / "other" / "000001.jpg"), np.zeros((8, 8, 3), np.uint8))
    assert open_source(str(seq / "other")).fps == 0


def test_a_folder_of_unknown_rate_says_so_once_naming_fps(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), np.full((8, 8, 3), 30 * i, np.uint8))
    src = open_source(str(folder))
    assert src.fps == 0 and len(src.notices) == 1 and "--fps" in src.notices[0]  # type: ignore[attr-defined]
    assert [f.timestamp for f in src] == pytest.approx([0.1, 0.2, 0.3])  # the 10 fps it warns about
    given = open_source(str(folder), fps=4.0)
    assert given.fps == 4.0 and not given.notices  # type: ignore[attr-defined]
    assert [f.timestamp for f in given] == pytest.approx([0.25, 0.5, 0.75])
    # a sequence's own rate wins over --fps (which then only paces the sending)
    assert open_source(str(_folder(tmp_path)), fps=4.0).fps == 7


def test_detection_scores_follow_one_explicit_rule(tmp_path: Path) -> None:
    """Issue 12 (10): the client guessed "divide by 100 when any score > 1", so a file already in [0, 1] whose
    largest score is 1.0065 was divided again and every score fell under the thresholds, silently."""
    seq = _folder(tmp_path)
    det = seq / "det" / "det.txt"
    det.write_text("1,-1,1,2,10,20,0.9,-1,-1,-1\n2,-1,5,5,4,4,1.0065,-1,-1,-1\n")
    with pytest.raises(InvalidInputError, match=r"outside \[0, 1\].*--score-scale 1\b.*--score-clip"):
        open_source(str(seq), detections="auto")
    frames = list(open_source(str(seq), detections="auto", score_rule=ScoreRule(1.0, clip=True)))
    assert frames[0].detections[1].tolist() == pytest.approx([0.9])  # type: ignore[index]
    assert frames[1].detections[1].tolist() == [1.0]  # type: ignore[index]
    # the client reads exactly what eval-mot reads: same boxes, same float32 scores
    from tracker_core.evaluation import read_detections

    det.write_text("1,-1,1,2,10,20,83.425,-1,-1,-1\n3,-1,5,5,4,4,20,-1,-1,-1\n3,-1,5,5,0,4,20,-1,-1,-1\n")
    ref = read_detections(det, 3, 100.0)
    got = [f.detections for f in open_source(str(seq), detections="auto", score_rule=ScoreRule(100.0))]
    for r, g in zip(ref, got, strict=True):
        assert g is not None
        assert r.boxes.tobytes() == g[0].tobytes() and r.scores.tobytes() == g[1].tobytes()


def test_stream_and_eval_mot_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = _folder(tmp_path)
    args = ["--source", str(seq), "--detections", "auto", "--server", "127.0.0.1:1", "--quiet"]
    assert main(["stream", *args]) == 2
    assert "--score-scale" in capsys.readouterr().err
    assert main(["loadgen", *args[:-1]]) == 2
    assert "--score-scale" in capsys.readouterr().err


def test_video_file_source(tmp_path: Path) -> None:
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (32, 24))
    for i in range(4):
        w.write(np.full((24, 32, 3), 50 * i, np.uint8))
    w.release()
    src = open_source(str(path))
    frames = list(src)
    src.close()
    assert len(frames) == 4 and frames[0].bgr.shape == (24, 32, 3) and src.fps == 5.0
    assert frames[-1].timestamp == pytest.approx(4 / 5)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a camera index"):
        open_source(str(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="no images"):
        open_source(str(empty))
    (tmp_path / "bad.txt").write_text("1,2,3\n")
    with pytest.raises(InvalidInputError, match="at least 7 columns"):
        read_mot_detections(tmp_path / "bad.txt", 3)


def test_wire_frames() -> None:
    bgr = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    dets = (np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([2]))
    f = SourceFrame(5, 0.5, bgr, None, dets)
    jpeg = build_frame(StreamConfig(server="h:1", stream_id="s"), f).frame
    assert jpeg.encoded[:2] == b"\xff\xd8" and not jpeg.use_client_detections and jpeg.frame_id == 5
    raw = build_frame(StreamConfig(server="h:1", stream_id="s", raw=True, send_detections=True), f).frame
    assert raw.raw.format == pb.PIXEL_FORMAT_BGR8 and raw.raw.data == bgr.tobytes()
    assert raw.use_client_detections and raw.detections[0].class_id == 2 and raw.detections[0].box.x2 == 3
    op = build_open(
        StreamConfig(server="h:1", stream_id="s", conf_threshold=0.4, classes=(0, 2)), resume=True
    ).open
    assert (
        op.resume and op.options.conf_threshold == pytest.approx(0.4) and list(op.options.classes) == [0, 2]
    )
    assert not op.options.HasField("appearance")
    with pytest.raises(InvalidInputError):
        StreamConfig(server="h:1", stream_id="s", max_in_flight=0)


def test_mot_lines_only_confirmed() -> None:
    resp = pb.TrackResponse(frame_id=3)
    resp.tracks.add(
        track_id=4, box=pb.Box(x1=1, y1=2, x2=11, y2=22), score=0.5, state=pb.TRACK_STATE_CONFIRMED
    )
    resp.tracks.add(track_id=5, box=pb.Box(x1=1, y1=2, x2=3, y2=4), score=0.5, state=pb.TRACK_STATE_LOST)
    assert mot_lines(3, resp) == ["3,4,1.00,2.00,10.00,20.00,0.5000,-1,-1,-1"]


def test_client_never_imports_torch() -> None:
    import subprocess

    code = "import sys, client.stream, client.loadgen, client.sample, client.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_latest_only_skips_stale_frames_for_slow_consumers() -> None:
    import time

    from client.sources import LatestOnly

    def camera():  # type: ignore[no-untyped-def]
        for i in range(1, 41):
            time.sleep(0.005)
            yield SourceFrame(i, i * 0.005, np.zeros((2, 2, 3), np.uint8))

    wrapped = LatestOnly(camera())
    got = []
    for f in wrapped:
        got.append(f.index)
        time.sleep(0.03)  # the consumer is ~6x slower than the camera
    assert got == sorted(got) and got[-1] == 40  # newest first, and the last frame is never lost
    assert len(got) < 25 and wrapped.skipped == 40 - len(got)

    def broken():  # type: ignore[no-untyped-def]
        yield SourceFrame(1, 0.0, np.zeros((2, 2, 3), np.uint8))
        raise OSError("camera unplugged")

    with pytest.raises(OSError, match="unplugged"):
        for _ in LatestOnly(broken()):
            time.sleep(0.01)
