"""Issue 12 (9): ``roitrack stream --detections`` through a real ``roitrack serve`` writes exactly the MOT results
``roitrack eval-mot`` writes for the same frames and detections, line for line, motion only and with appearance
(the same detector and encoder files on both sides), whatever the client's in-flight setting.

Before the fix the client read det.txt its own way (float32 division, "divide by 100 if any score > 1"),
timestamped frames differently from eval-mot, and let the server's latest-frame-wins queue drop frames of a file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from roitrack_cli.main import main
from server.config import replace
from server.loading import build_runner
from tests.integration.server_harness import config, running_server, tiny_runner

pytestmark = pytest.mark.timeout(300)

FRAMES = 60
SIZE = 160


def _head(seq: Path, dst: Path, n: int = FRAMES) -> Path:
    """The first ``n`` frames of a MOTChallenge sequence (images linked, det/gt rows cut, seqinfo rewritten)."""
    (dst / "img1").mkdir(parents=True)
    for sub in ("det", "gt"):
        (dst / sub).mkdir()
        rows = (seq / sub / f"{sub}.txt").read_text().splitlines()
        (dst / sub / f"{sub}.txt").write_text("\n".join(r for r in rows if int(r.split(",")[0]) <= n) + "\n")
    for i in range(1, n + 1):
        (dst / "img1" / f"{i:06d}.jpg").symlink_to(seq / "img1" / f"{i:06d}.jpg")
    ini = (seq / "seqinfo.ini").read_text().replace("seqLength=400", f"seqLength={n}")
    (dst / "seqinfo.ini").write_text(ini)
    return dst


def _eval_mot(seq: Path, out: Path, *extra: str) -> list[str]:
    det = str(seq / "det" / "det.txt")
    args = ["eval-mot", "--seq", str(seq), "--det", det, "--score-scale", "100", "--score-clip"]
    assert main([*args, "--out", str(out), "--json", *extra]) == 0
    return out.read_text().splitlines()


async def _stream(port: int, seq: Path, out: Path, *extra: str) -> list[str]:
    args = [
        "stream",
        "--server",
        f"127.0.0.1:{port}",
        "--source",
        str(seq),
        "--detections",
        "auto",
        "--score-scale",
        "100",
        "--score-clip",
        "--mot-out",
        str(out),
        "--quiet",
        *extra,
    ]
    assert await asyncio.to_thread(main, args) == 0
    return out.read_text().splitlines()


def _assert_same(got: list[str], ref: list[str]) -> None:
    assert len(ref) > 40  # PETS has several people in every frame (tracks confirmed after 3 matches)
    for k, (g, r) in enumerate(zip(got, ref, strict=False)):
        assert g == r, f"line {k + 1}: stream {g!r} != eval-mot {r!r}"
    assert len(got) == len(ref)


async def test_stream_equals_eval_mot_motion_only(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    seq = _head(pets_sequence, tmp_path / "PETS-head")
    ref = _eval_mot(seq, tmp_path / "eval.txt")
    async with running_server(runner=tiny_runner(False), queue_size=2) as srv:
        # 8 in flight against a queue of 2: the client must cap itself (it says so) instead of losing frames
        got = await _stream(
            srv.port, seq, tmp_path / "stream.txt", "--max-in-flight", "8", "--stream-id", "a"
        )
        assert "lowered to the server's queue size 2" in capsys.readouterr().err
        _assert_same(got, ref)
        got_paced = await _stream(srv.port, seq, tmp_path / "s2.txt", "--fps", "40", "--stream-id", "b")
        _assert_same(got_paced, ref)
        # issue 19 (3): the folder that holds the frames, as a user names it, finds seqinfo.ini beside it (it was
        # stamped at a silent 10 fps instead of PETS' 7, and the dt-aware tracker answered differently)
        det = str(seq / "det" / "det.txt")
        got_img1 = await _stream(
            srv.port, seq / "img1", tmp_path / "s3.txt", "--stream-id", "c", "--detections", det
        )
        _assert_same(got_img1, ref)
        capsys.readouterr()
        # a folder of unknown rate (no seqinfo.ini in or beside it) says so once, naming --fps
        bare = tmp_path / "bare"
        bare.mkdir()
        for f in sorted((seq / "img1").iterdir())[:3]:
            (bare / f.name).symlink_to(f.resolve())
        rows = (seq / "det" / "det.txt").read_text().splitlines()
        (tmp_path / "bare-det.txt").write_text("\n".join(r for r in rows if int(r.split(",")[0]) <= 3) + "\n")
        await _stream(
            srv.port,
            bare,
            tmp_path / "s4.txt",
            "--stream-id",
            "d",
            "--detections",
            str(tmp_path / "bare-det.txt"),
        )
        err = capsys.readouterr().err
        assert err.count("warning:") == 1 and err.count("--fps") == 1 and "unknown" in err, err


async def test_stream_equals_eval_mot_with_appearance(pets_sequence: Path, tmp_path: Path) -> None:
    from tests.integration.test_eval_mot import _tiny_models

    seq = _head(pets_sequence, tmp_path / "PETS-head", 25)
    weights, enc = _tiny_models(tmp_path)
    ref = _eval_mot(
        seq,
        tmp_path / "eval.txt",
        "--appearance",
        "on",
        "--weights",
        str(weights),
        "--encoder",
        str(enc),
        "--size",
        str(SIZE),
        "--backend",
        "torch",
        "--precision",
        "fp32",
    )
    # one backend named for every path (`auto` chooses by timing; frames_from_images defaults to torch fp32)
    cfg = replace(
        config(),
        weights=str(weights),
        random_weights=False,
        encoder=str(enc),
        input_size=SIZE,
        backend="torch",
        precision="fp32",
    )
    runner = build_runner(cfg)
    runner.warmup()
    # the two paths compute the same embeddings (the tracker weighs a random encoder's embeddings little, so
    # equal lines alone would not show it): the server's runner on the JPEG bytes vs eval-mot's image path
    from server.frames import ClientDetections, EncodedImage, FrameInput
    from tracker_core.evaluation import read_detections, read_seqinfo
    from tracker_core.evaluation.image_source import frames_from_images

    info = read_seqinfo(seq)
    dets = read_detections(seq / "det" / "det.txt", info.seq_length, 100.0, score_clip=True)
    _, offline = frames_from_images(seq, info, weights, enc, detections=dets, size=SIZE, max_frames=3)
    assert offline is not None
    for i in range(3):
        fd = dets[i]
        inp = FrameInput(
            EncodedImage((seq / "img1" / f"{i + 1:06d}.jpg").read_bytes()),
            ClientDetections(fd.boxes, fd.scores, np.zeros(len(fd.scores), np.int64)),
        )
        served = runner.run([inp])[0].embeddings
        assert served is not None and served.shape == offline[i].shape and len(served) > 2
        np.testing.assert_allclose(served, offline[i], rtol=0, atol=1e-5)
    async with running_server(
        runner=runner, weights=str(weights), encoder=str(enc), random_weights=False
    ) as srv:
        assert srv.runner.appearance_available  # the stream (appearance on by default) gets embeddings
        got = await _stream(srv.port, seq, tmp_path / "stream.txt", "--max-in-flight", "4")
    _assert_same(got, ref)
