"""Camera motion compensation end to end on a synthetic pan/zoom over PETS09 (60 frames at 320x240): estimated
from the frames through ``roitrack serve`` + ``roitrack stream`` and through ``eval-mot --gmc frames``, it matches
tracking with the true camera motion (``eval-mot --gmc gmc.txt``) within 0.5 HOTA; without it tracking is far worse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from roitrack_cli.main import main
from tests.integration.server_harness import running_server, tiny_runner
from tracker_core.evaluation import evaluate_results
from tracker_core.evaluation.synthetic_pan import make_pan_sequence

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pan(pets_sequence: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pan_sequence(
        pets_sequence, tmp_path_factory.mktemp("pan") / "pan", frames=60, out_size=(320, 240), seed=0
    )


def _eval(capsys: pytest.CaptureFixture[str], seq: Path, *extra: str) -> dict:
    assert main(["eval-mot", "--seq", str(seq), "--det", str(seq / "det" / "det.txt"), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_make_pan_command_writes_a_sequence(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p"
    args = ["make-pan", str(pets_sequence), "--out", str(out), "--frames", "5", "--size", "160", "120"]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} >= {"img1", "gt", "det", "gmc.txt", "seqinfo.ini"}
    assert len(list((out / "img1").iterdir())) == 5
    assert main([*args[:3], str(tmp_path / "q"), "--frames", "1"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_eval_mot_gmc_frames_matches_the_true_camera_motion(pan: Path, capsys) -> None:
    off = _eval(capsys, pan)
    true = _eval(capsys, pan, "--gmc", str(pan / "gmc.txt"))
    est = _eval(capsys, pan, "--gmc", "frames")
    assert est["camera_motion"] == "frames" and off["camera_motion"] is None
    assert abs(est["HOTA"] - true["HOTA"]) <= 0.5
    # measured: off 29.4 HOTA / 19 IDSW, true 41.6 / 6
    assert true["HOTA"] > off["HOTA"] + 8
    assert est["IDSW"] < off["IDSW"]


async def _stream(port: int, seq: Path, out: Path, *extra: str) -> None:
    args = ["stream", "--server", f"127.0.0.1:{port}", "--source", str(seq), "--detections", "auto"]
    args += ["--mot-out", str(out), "--quiet", "--no-appearance", *extra]
    assert await asyncio.to_thread(main, args) == 0


async def test_serve_and_stream_estimate_camera_motion_from_the_frames(
    pan: Path, tmp_path: Path, capsys
) -> None:
    true = _eval(capsys, pan, "--gmc", str(pan / "gmc.txt"))
    files = {}
    # the server's default is off here: the stream option turns it on (on, auto) or leaves it off
    async with running_server(runner=tiny_runner(False), queue_size=2, camera_motion="off") as srv:
        for mode in ("on", "auto", "default"):
            extra = () if mode == "default" else ("--camera-motion", mode)
            files[mode] = tmp_path / f"{mode}.txt"
            await _stream(srv.port, pan, files[mode], "--stream-id", f"cam-{mode}", *extra)
        text = generate_latest(srv.metrics.registry).decode()
    scores = evaluate_results(pan, {k: str(v) for k, v in files.items()})
    assert abs(scores["on"]["HOTA"] - true["HOTA"]) <= 0.5
    assert (
        abs(scores["auto"]["HOTA"] - true["HOTA"]) <= 0.5
    )  # the pan moves from the first frame: auto applies it
    assert scores["default"]["HOTA"] < true["HOTA"] - 8  # off: far worse
    # the estimate is its own stage in the stage histogram (counted for the two streams that estimate: 2 x 60)
    count = [
        ln
        for ln in text.splitlines()
        if ln.startswith('roitrack_stage_latency_seconds_count{stage="camera_motion"}')
    ]
    assert count and float(count[0].split()[-1]) == 120
