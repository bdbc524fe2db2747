"""``roitrack train-detector`` end to end on real PETS09 frames (CPU): a few iterations on a handful of frames make
the loss fall and write weights that ``roitrack serve`` loads and answers frames with; ``eval-mot`` without
``--det`` and ``serve`` + ``stream`` without client detections give the same results line for line; resume; DDP
(torchrun, gloo) and the built-in local processes; YOLO datasets and several sources at once; bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_cli.main import main
from tests.conftest import REPO
from tests.integration.server_harness import Lockstep, free_port, open_req, stub
from tracker_core.evaluation.mot_slice import slice_sequence

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

SIZE = 320
FRAMES = 16


def _train_args(data: list[Path], out: Path, *extra: str) -> list[str]:
    args = ["train-detector", "--out", str(out), "--img-size", str(SIZE), "--batch", "4", "--procs", "1"]
    args += ["--threads", "1", "--time-budget", "0", "--no-progress", "--holdout", "0.25", "--patience", "0"]
    for d in data:
        args += ["--data", str(d)]
    return [*args, *extra]


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def head(pets_sequence: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slice_sequence(pets_sequence, 1, FRAMES, tmp_path_factory.mktemp("seq") / "pets-head")


@pytest.fixture(scope="module")
def trained(head: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 epochs on 12 frames (4 held out), whole frames at 320 px, warm-up of one epoch."""
    out = tmp_path_factory.mktemp("det") / "run"
    args = _train_args(
        [head], out, "--epochs", "12", "--mosaic", "0", "--set", "warmup_epochs=1", "--set", "eval_every=4"
    )
    assert main(args) == 0
    return out


def test_loss_falls_and_the_run_writes_its_outputs(trained: Path) -> None:
    recs = _log(trained)
    start = recs[0]
    assert start["type"] == "start" and start["train_images"] == 12 and start["holdout_images"] == 4
    assert start["train_shape"] == [256, 320]  # 768x576 frames at long side 320, sides rounded up to 32
    assert start["anchors_fitted"] and start["amp"] in ("bf16", "off")
    steps = [r["loss"] for r in recs if r["type"] == "step"]
    assert len(steps) == 36  # 12 epochs x 3 batches of 4
    assert np.mean(steps[-6:]) < 0.7 * np.mean(steps[:3]), steps
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 13))
    assert all("wall_s" in e and "cpu_s" in e and "loadavg" in e for e in epochs)
    evals = [e for e in epochs if "holdout" in e]
    assert [e["epoch"] for e in evals] == [4, 8, 12]
    assert all(0 <= e["holdout"]["ap50"] <= 1 for e in evals)
    summary = json.loads((trained / "detector.json").read_text())
    assert summary["ended"] == "done" and summary["epochs_done"] == 12 and summary["names"] == ["person"]
    assert (trained / "train_curve.png").stat().st_size > 1000

    from tracker_core.detector import load_detector, read_meta

    meta = read_meta(trained / "detector.safetensors")
    assert meta.arch == "yolov7-tiny" and meta.nc == 1 and meta.names == ["person"]
    assert meta.anchors == summary["anchors"] and meta.source_sha256 == summary["source_sha256"]
    det = load_detector(trained / "detector.safetensors", fuse=True)
    assert det.weights_sha256 == meta.source_sha256 and det.names == ["person"]


async def test_serve_loads_the_result_and_answers_a_frame(trained: Path, head: Path) -> None:
    weights = trained / "detector.safetensors"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "roitrack_cli.main",
        "serve",
        "--weights",
        str(weights),
        "--input-size",
        str(SIZE),
    ]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            deadline, status = time.monotonic() + 240, None
            while time.monotonic() < deadline and proc.returncode is None:
                try:
                    status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=2)).status
                except grpc.aio.AioRpcError:
                    status = None
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.3)
            assert status == health_pb2.HealthCheckResponse.SERVING
            info = await stub(ch).GetInfo(pb.GetInfoRequest())
            from tracker_core.detector import read_meta

            assert info.detector_arch == "yolov7-tiny" and info.input_size == SIZE
            assert info.weights_sha256 == read_meta(weights).source_sha256 and list(info.class_names) == [
                "person"
            ]
            call = Lockstep(stub(ch))
            await call.send(open_req("trained"))
            jpeg = (head / "img1" / "000001.jpg").read_bytes()
            resp = await call.step(pb.TrackRequest(frame=pb.Frame(frame_id=1, timestamp=0.0, encoded=jpeg)))
            assert resp.frame_id == 1 and not resp.HasField("error")
            await call.finish()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


BACKEND, PRECISION = "torch", "fp32"


def _eval_mot_lines(seq: Path, weights: Path, out: Path, conf: float) -> list[str]:
    args = [
        "eval-mot",
        "--seq",
        str(seq),
        "--weights",
        str(weights),
        "--size",
        str(SIZE),
        "--conf",
        str(conf),
        "--backend",
        BACKEND,
        "--precision",
        PRECISION,
    ]
    assert main([*args, "--out", str(out), "--json"]) == 0
    return out.read_text().splitlines()


async def test_eval_mot_without_det_equals_serve_and_stream_without_client_detections(
    trained: Path, head: Path, tmp_path: Path
) -> None:
    """The detector's own detections, both paths: eval-mot reads the images and runs the detector; the server
    runs the same weights on the streamed JPEGs (its defaults: fused, batched); results equal line for line."""
    from server.config import replace
    from server.loading import build_runner
    from tests.integration.server_harness import config, running_server

    weights = trained / "detector.safetensors"
    conf = 0.05  # a detector trained for seconds: a low threshold so that there are tracks to compare
    ref = _eval_mot_lines(head, weights, tmp_path / "eval.txt", conf)
    assert len(ref) > 2 * FRAMES, "too few tracked boxes to compare"
    # one backend named for both paths: `auto` chooses by timing, and on a loaded machine two choices may differ
    same = dict(backend=BACKEND, precision=PRECISION)
    cfg = replace(config(), weights=str(weights), random_weights=False, input_size=SIZE, **same)
    runner = build_runner(cfg)
    async with running_server(
        runner=runner, weights=str(weights), random_weights=False, input_size=SIZE, **same
    ) as srv:
        args = ["stream", "--server", f"127.0.0.1:{srv.port}", "--source", str(head), "--conf", str(conf)]
        args += ["--mot-out", str(tmp_path / "stream.txt"), "--quiet", "--no-appearance"]
        assert await asyncio.to_thread(main, args) == 0
    got = (tmp_path / "stream.txt").read_text().splitlines()
    for k, (g, r) in enumerate(zip(got, ref, strict=False)):
        assert g == r, f"line {k + 1}: stream {g!r} != eval-mot {r!r}"
    assert len(got) == len(ref)


def test_resume_continues_the_run(head: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _train_args([head], out, "--epochs", "3", "--mosaic", "0", "--set", "eval_every=1")
    assert main([*args, "--stop-after-epochs", "1"]) == 0
    assert not (out / "detector.safetensors").exists() and (out / "checkpoint.safetensors").is_file()
    first = [r for r in _log(out) if r["type"] == "epoch"]
    assert [e["epoch"] for e in first] == [1]
    assert main(args) == 0
    recs = _log(out)
    assert [r["epoch"] for r in recs if r["type"] == "epoch"] == [1, 2, 3]
    assert [r["step"] for r in recs if r["type"] == "step"] == list(range(1, 10))  # 3 x 3 batches, none twice
    assert json.loads((out / "detector.json").read_text())["epochs_done"] == 3


def _yolo_from_mot(seq: Path, root: Path, frames: range) -> Path:
    """A YOLO dataset (images/ + labels/ + data.yaml) of some PETS frames, from their scored gt rows."""
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    for split, fr in (("train", frames[:-2]), ("val", frames[-2:])):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for f in fr:
            (root / "images" / split / f"{f:06d}.jpg").symlink_to(seq / "img1" / f"{f:06d}.jpg")
            rows = gt[(gt[:, 0] == f) & (gt[:, 6] == 1)]
            lines = [
                f"0 {(r[2] + r[4] / 2) / 768} {(r[3] + r[5] / 2) / 576} {r[4] / 768} {r[5] / 576}"
                for r in rows
            ]
            (root / "labels" / split / f"{f:06d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [person]\n")
    return root / "data.yaml"


def test_yolo_dataset_and_several_sources(pets_sequence: Path, head: Path, tmp_path: Path) -> None:
    yaml = _yolo_from_mot(pets_sequence, tmp_path / "yolo", range(300, 308))
    out = tmp_path / "run"
    assert main(_train_args([yaml, head], out, "--epochs", "1")) == 0
    start = _log(out)[0]
    assert start["train_images"] == 6 + 12 and start["holdout_images"] == 2 + 4  # val split + sequence tail
    assert "yolo: 6 train, 2 held out" in start["data"] and "mot: 12 train, 4 held out" in start["data"]
    assert (out / "detector.safetensors").is_file()


def test_bad_input_exits_2(head: Path, tmp_path: Path, capsys) -> None:
    assert main(_train_args([tmp_path / "nope"], tmp_path / "o")) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "noseq").mkdir()
    assert main(_train_args([tmp_path / "noseq"], tmp_path / "o")) == 2
    assert "MOTChallenge sequence" in capsys.readouterr().err
    args = _train_args([head], tmp_path / "o")
    args[args.index("--procs") + 1] = "3"
    assert main(args) == 2  # a batch of 4 cannot be split over 3 processes
    assert "multiple" in capsys.readouterr().err


def _run_cli(cmd: list[str], timeout: int = 800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_torchrun_two_gloo_processes(head: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    cmd += ["training.detector.train", *_train_args([head], out, "--epochs", "2")[1:]]
    proc = _run_cli(cmd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    recs = _log(out)
    assert recs[0]["world"] == 2
    # 12 training frames over 2 ranks, global batch 4 = 2 per rank: 3 steps per epoch on each rank
    assert [r["step"] for r in recs if r["type"] == "step"] == list(range(1, 7))
    assert all(e["processes"] == 2 for e in recs if e["type"] == "epoch")
    assert json.loads((out / "detector.json").read_text())["world"] == 2


def test_local_processes_default_path(head: Path, tmp_path: Path) -> None:
    """``--procs 2`` (what ``auto`` picks on a 2-core CPU): two single-threaded DDP workers over gloo."""
    out = tmp_path / "run"
    args = _train_args([head], out, "--epochs", "1")
    args[args.index("--procs") + 1] = "2"
    proc = _run_cli([sys.executable, "-m", "roitrack_cli.main", *args])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 process(es) x 1 thread(s)" in proc.stdout
    assert _log(out)[0]["world"] == 2 and (out / "detector.safetensors").is_file()
