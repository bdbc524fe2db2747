"""``roitrack serve --reid-model`` + ``roitrack stream --embedding reid`` write exactly the results of
``roitrack eval-mot --reid-model`` on PETS09 (public detections sent by the client, ``--score-scale 100
--score-clip``), with the real OSNet from ../shared/models: the same crops of the same decoded JPEG bytes, the
same model, the same embeddings, the same tracker. The first 100 frames keep the test near a minute on the
2-core CI machine; docs/reid.md gives the full-sequence run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from roitrack_cli.main import main
from server.loading import build_runner
from tests.integration.server_harness import config, running_server
from tests.integration.test_stream_parity import _assert_same, _head, _stream

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

FRAMES = 100


@pytest.fixture(scope="module")
def osnet_path(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "osnet_x0_25_msmt17.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared ReID model is absent")
    return path


async def test_serve_and_stream_equal_eval_mot_with_reid(
    pets_sequence: Path, osnet_path: Path, tmp_path: Path, capsys
) -> None:
    from server.frames import ClientDetections, EncodedImage, FrameInput
    from tracker_core.evaluation import read_detections, read_seqinfo
    from tracker_core.evaluation.embedding_file import load_embeddings

    seq = _head(pets_sequence, tmp_path / "PETS-head", FRAMES)
    det = seq / "det" / "det.txt"
    npz = tmp_path / "emb.npz"
    args = ["eval-mot", "--seq", str(seq), "--det", str(det), "--score-scale", "100", "--score-clip"]
    args += [
        "--reid-model",
        str(osnet_path),
        "--save-embeddings",
        str(npz),
        "--out",
        str(tmp_path / "eval.txt"),
    ]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["embedding"] == "reid" and result["appearance_margin"] is not None
    ref = (tmp_path / "eval.txt").read_text().splitlines()
    offline = load_embeddings(npz).embeddings

    cfg = config(reid_model=str(osnet_path))
    runner = build_runner(cfg)
    # embedding by embedding: the server's runner on the JPEG bytes a client streams == eval-mot's
    info = read_seqinfo(seq)
    dets = read_detections(det, info.seq_length, 100.0, score_clip=True)
    for i in (0, 40, 99):
        fd = dets[i]
        inp = FrameInput(
            EncodedImage((seq / "img1" / f"{i + 1:06d}.jpg").read_bytes()),
            ClientDetections(fd.boxes, fd.scores, np.zeros(len(fd.scores), np.int64)),
            embedding="reid",
        )
        (out,) = runner.run([inp])
        assert out.embedding == "reid" and len(out.embeddings) == len(fd.boxes) > 2
        np.testing.assert_array_equal(out.embeddings, offline[i])
    async with running_server(runner=runner, reid_model=str(osnet_path)) as srv:
        got = await _stream(
            srv.port, seq, tmp_path / "stream.txt", "--embedding", "reid", "--max-in-flight", "4"
        )
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["embedding"] == "reid" and summary["answered"] == FRAMES
        crops = srv.metrics.registry.get_sample_value("roitrack_reid_crops_per_frame_sum")
    _assert_same(got, ref)
    assert crops == sum(
        len(d.boxes) for d in dets
    )  # every detection of every frame was embedded by the server
