"""``roitrack val``: the ``--mot`` and ``--pairs`` forms agree on the same data; the JSON shape; bad input."""

from __future__ import annotations

import json

import pytest

from roitrack_cli.main import main
from tests.integration.encoder_data import make_detector_file, make_sequence, write_pairs_dir

KEYS = {"top1", "mean_rank", "mrr", "recall@5", "recall@10"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tracker_core.detector import load_detector
    from tracker_core.encoder import EncoderMeta, RoiEncoder, save_encoder

    root = tmp_path_factory.mktemp("val")
    seq = make_sequence(root / "seq", frames=12, objects=4, seed=3)
    det_path = make_detector_file(root / "det.safetensors")
    det = load_detector(det_path)
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp+pixels",
        tap_channels={"32": det.tap_channels, "1": 3},
        width=32,
        training={"input_size": 128, "rect": True},
    )
    save_encoder(root / "enc.safetensors", RoiEncoder(det.tap_channels + 3, width=32), meta)
    return root, seq, det_path


def _val(capsys, *args: str) -> dict:
    assert main(["val", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_mot_and_pairs_forms_agree(setup, capsys):
    root, seq, det = setup
    common = ["--weights", str(det), "--encoder", str(root / "enc.safetensors")]
    mot = _val(capsys, "--mot", str(seq), "--gap", "4", "--stride", "3", *common)
    pairs = write_pairs_dir(root / "pairs", seq, [(1, 5), (4, 8), (7, 11)])
    via_dir = _val(capsys, "--pairs", str(pairs), *common)
    assert set(mot) == {"encoder", "raw_features", "center_distance", "color_histogram"}
    for method, m in mot.items():
        assert set(m) == {"pooled", "per_pair", "num_queries", "num_valid", "num_pairs"}
        assert set(m["pooled"]) == set(m["per_pair"]) == KEYS
        assert (m["num_pairs"], m["num_queries"], m["num_valid"]) == (3, 12, 12)
        d = via_dir[method]
        assert (d["num_pairs"], d["num_queries"], d["num_valid"]) == (3, 12, 12)
        for mode in ("pooled", "per_pair"):
            for k in KEYS:
                assert d[mode][k] == pytest.approx(m[mode][k], abs=1e-9), (method, mode, k)
    # centre distance on slowly moving boxes is near perfect; it is a real baseline, not a constant
    assert mot["center_distance"]["pooled"]["top1"] >= 0.75


def test_table_output_and_bad_input(setup, capsys):
    root, seq, det = setup
    common = ["--weights", str(det), "--encoder", str(root / "enc.safetensors")]
    assert main(["val", "--mot", str(seq), "--gap", "4", "--stride", "6", *common]) == 0
    out = capsys.readouterr().out
    assert "Top-1" in out and "Recall@10" in out and "raw_features" in out and "Num. Valid" in out
    assert main(["val", "--mot", str(seq), "--gap", "40", *common]) == 2
    assert "no pair with gap" in capsys.readouterr().err
    assert main(["val", "--pairs", str(root / "nowhere"), *common]) == 2
    assert "missing" in capsys.readouterr().err
    other = make_detector_file(root / "other.safetensors", seed=1)
    assert (
        main(["val", "--mot", str(seq), "--weights", str(other), "--encoder", str(root / "enc.safetensors")])
        == 2
    )
    assert "another detector" in capsys.readouterr().err


def test_without_an_encoder_the_detector_baselines_match_the_encoder_run(setup, capsys):
    """``roitrack val`` without ``--encoder``: the raw features of ``--features`` on this detector, the same
    figures an encoder reading those taps reports for its input (how a trained and a random backbone compare)."""
    root, seq, det = setup
    common = ["--mot", str(seq), "--gap", "4", "--stride", "3", "--weights", str(det)]
    with_enc = _val(capsys, *common, "--encoder", str(root / "enc.safetensors"))
    bare = _val(capsys, *common, "--features", "spp+pixels", "--input-size", "128", "--rect")
    assert set(bare) == {"raw_features", "center_distance", "color_histogram"}
    for k in bare:
        assert bare[k] == with_enc[k]
