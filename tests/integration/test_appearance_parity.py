"""eval-mot and the server compute the same embeddings for the same frame and boxes (same letterbox, same maps,
same encoder inputs), for an encoder that reads a finer tap and the box's pixels (the default MixEncoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration.encoder_data import make_detector_file, make_sequence

pytestmark = pytest.mark.timeout(300)


def _mix_encoder_file(path: Path, det_path: Path) -> Path:
    from tracker_core.detector import load_detector
    from tracker_core.encoder import EncoderMeta, MixEncoder, save_encoder

    det = load_detector(det_path)
    taps = {"32": 256, "8": 64, "1": 12}
    torch.manual_seed(0)
    model = MixEncoder([(int(k), v) for k, v in taps.items()])
    model.set_block_weight("learned", 1.0)  # every block counts, so a difference in any input shows
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp+s8+pixels2",
        tap_channels=taps,
        arch="mix",
        blocks=model.blocks,
    )
    save_encoder(path, model, meta)
    return path


def test_eval_mot_and_server_embeddings_are_identical(tmp_path: Path):
    from server.frames import ClientDetections, EncodedImage, FrameInput
    from server.model_runner import ModelRunner
    from tracker_core.detector import load_detector
    from tracker_core.encoder import Appearance
    from tracker_core.evaluation import read_detections, read_seqinfo
    from tracker_core.evaluation.image_source import frames_from_images

    seq = make_sequence(tmp_path / "seq", frames=4)
    det_path = make_detector_file(tmp_path / "det.safetensors")
    enc_path = _mix_encoder_file(tmp_path / "enc.safetensors", det_path)
    info = read_seqinfo(seq)
    dets = read_detections(seq / "det" / "det.txt", info.seq_length, 100)
    size = 160
    frames, emb = frames_from_images(seq, info, det_path, enc_path, detections=dets, size=size)
    assert emb is not None and all(len(e) == len(f.boxes) for e, f in zip(emb, frames, strict=True))
    assert emb[0].shape[1] == 256 + 64 + 2 * 72 + 128  # raw (spp + s8) + two colour stripes + learned

    detector = load_detector(det_path, fuse=True)  # as roitrack serve runs it (and eval-mot, by default)
    runner = ModelRunner(detector, Appearance.from_checkpoint(enc_path, detector=detector), input_size=size)
    for i, fd in enumerate(frames):
        jpeg = (seq / "img1" / f"{i + 1:06d}.jpg").read_bytes()  # the bytes a client streams
        cd = ClientDetections(fd.boxes, fd.scores, np.zeros(len(fd.boxes), np.int64))
        (out,) = runner.run([FrameInput(EncodedImage(jpeg), cd)])
        assert out.error is None and out.embeddings is not None
        np.testing.assert_array_equal(out.boxes, fd.boxes)
        np.testing.assert_allclose(out.embeddings, emb[i], atol=1e-5)
    # and they are not trivially equal: different boxes give different embeddings
    assert np.abs(emb[0][0] - emb[0][1]).max() > 1e-3


def test_server_refuses_an_encoder_of_another_detector(tmp_path: Path):
    from tracker_core.detector import load_detector
    from tracker_core.encoder import Appearance
    from tracker_core.errors import WeightsError

    det_a = make_detector_file(tmp_path / "a.safetensors", seed=0)
    det_b = make_detector_file(tmp_path / "b.safetensors", seed=1)
    enc = _mix_encoder_file(tmp_path / "enc.safetensors", det_a)
    with pytest.raises(WeightsError, match="another detector"):
        Appearance.from_checkpoint(enc, detector=load_detector(det_b))


@pytest.mark.timeout(600)
def test_bench_appearance_runs_both_paths_end_to_end(tmp_path: Path, capsys):
    """``roitrack bench appearance`` with a given encoder on a small labelled sequence: val at a gap, eval-mot and
    a real serve + stream with appearance off and on, all scored; both paths agree."""
    import json

    from roitrack_cli.main import main

    seq = make_sequence(tmp_path / "seq", frames=10)
    det_path = make_detector_file(tmp_path / "det.safetensors")
    enc_path = _mix_encoder_file(tmp_path / "enc.safetensors", det_path)
    args = ["bench", "appearance", "--weights", str(det_path), "--train", str(seq), "--test", str(seq)]
    args += ["--encoder", str(enc_path), "--gaps", "3", "--score-scale", "100", "--work", str(tmp_path / "w")]
    args += ["--out", str(tmp_path / "md"), "--name", "split", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(r["val"]["3"]) == {"encoder", "raw_features", "color_histogram", "center_distance"}
    for path in ("eval-mot", "serve+stream"):
        for mode in ("off", "on"):
            assert set(r["tracking"][path][mode]) == {"HOTA", "MOTA", "IDF1", "IDSW"}
            assert r["tracking"][path][mode]["MOTA"] > 0
    assert r["tracking"]["eval-mot"] == r["tracking"]["serve+stream"]
    assert "met" in r["targets"]["eval-mot"]
    assert (tmp_path / "md" / "split.md").read_text().startswith("# Appearance on unseen frames")
    assert json.loads((tmp_path / "md" / "split.json").read_text())["tracking"] == r["tracking"]
