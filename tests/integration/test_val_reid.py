"""``roitrack val --reid-model``: ReID models scored beside the encoder and the baselines on the same queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roitrack_cli.main import main
from tests.integration.encoder_data import make_detector_file, make_sequence
from tests.reid_models import colour_model

pytestmark = pytest.mark.timeout(300)


def test_val_scores_reid_models_beside_the_encoder(tmp_path: Path, capsys):
    from tracker_core.detector import load_detector
    from tracker_core.encoder import EncoderMeta, RoiEncoder, save_encoder

    seq = make_sequence(tmp_path / "seq", frames=12, objects=4, seed=3)
    det_path = make_detector_file(tmp_path / "det.safetensors")
    det = load_detector(det_path)
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp",
        tap_channels={"32": det.tap_channels},
        width=32,
        training={"input_size": 128, "rect": True},
    )
    save_encoder(tmp_path / "enc.safetensors", RoiEncoder(det.tap_channels, width=32), meta)
    model = colour_model(tmp_path / "colour.onnx")
    base = ["val", "--mot", str(seq), "--gap", "4", "--stride", "3", "--weights", str(det_path)]
    base += ["--encoder", str(tmp_path / "enc.safetensors"), "--json"]
    assert main([*base, "--reid-model", str(model)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert list(r) == ["encoder", "raw_features", "center_distance", "color_histogram", "reid"]
    assert r["reid"]["num_valid"] == r["encoder"]["num_valid"] == 12  # the same queries
    # the objects differ in colour, which is all this model sees: it ranks them well
    assert r["reid"]["pooled"]["top1"] >= 0.9
    other = tmp_path / "other.onnx"
    other.write_bytes(model.read_bytes())
    assert main([*base, "--reid-model", str(model), "--reid-model", str(other)]) == 0
    r2 = json.loads(capsys.readouterr().out)
    assert r2["reid:colour"] == r2["reid:other"] == r["reid"]
    assert main([*base[:-1], "--reid-model", str(model)]) == 0  # the table names the method
    assert "reid" in capsys.readouterr().out
