"""``roitrack eval-mot --reid-model``: ReID embeddings of every detection from the sequence's own frames;
``--save-embeddings`` then ``--embeddings`` reproduce the run without the model, and refuse other detections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from roitrack_cli.main import main
from tests.integration.encoder_data import make_sequence
from tests.reid_models import colour_model

pytestmark = pytest.mark.timeout(300)


def _run(capsys, *args: str) -> dict:
    assert main(["eval-mot", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_reid_model_save_and_reuse_embeddings(tmp_path: Path, capsys):
    from tracker_core.evaluation import read_detections, read_seqinfo
    from tracker_core.evaluation.embedding_file import load_embeddings
    from tracker_core.evaluation.image_source import reid_embeddings
    from tracker_core.reid import load_reid_model

    seq = make_sequence(tmp_path / "seq", frames=10, objects=3)
    model = colour_model(tmp_path / "reid.onnx")
    det = str(seq / "det" / "det.txt")
    base = ["--seq", str(seq), "--det", det, "--score-scale", "100"]
    npz = tmp_path / "emb.npz"
    first = _run(
        capsys,
        *base,
        "--reid-model",
        str(model),
        "--save-embeddings",
        str(npz),
        "--out",
        str(tmp_path / "a.txt"),
    )
    assert first["embedding"] == "reid" and first["appearance"] == "on"
    assert first["appearance_margin"] is not None  # the tracker got embeddings
    ef = load_embeddings(npz)
    info = read_seqinfo(seq)
    frames = read_detections(det, info.seq_length, 100.0)
    ref = reid_embeddings(seq, info, frames, load_reid_model(model))
    assert len(ef.embeddings) == 10 and ef.dim == 4
    for a, b in zip(ef.embeddings, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ef.meta["kind"] == "reid" and ef.meta["model_sha256"] == first["embedding_model_sha256"]
    assert ef.meta["detections"] == det and len(ef.meta["detections_sha256"]) == 64
    assert "--score-scale 100" in ef.meta["score_rule"] and json.loads(ef.meta["input_spec"])["height"] == 8

    again = _run(capsys, *base, "--embeddings", str(npz), "--out", str(tmp_path / "b.txt"))
    assert again["embedding"] == "reid" and again["embedding_model_sha256"] == first["embedding_model_sha256"]
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    assert {k: again[k] for k in ("HOTA", "IDF1", "IDSW")} == {k: first[k] for k in ("HOTA", "IDF1", "IDSW")}


def test_embeddings_for_other_detections_and_bad_combinations_exit_2(tmp_path: Path, capsys):
    seq = make_sequence(tmp_path / "seq", frames=6, objects=3)
    model = colour_model(tmp_path / "reid.onnx")
    base = ["eval-mot", "--seq", str(seq), "--det", str(seq / "det" / "det.txt"), "--score-scale", "100"]
    npz = tmp_path / "emb.npz"
    assert main([*base, "--reid-model", str(model), "--save-embeddings", str(npz)]) == 0
    capsys.readouterr()
    # scores are 80/85/90: --min-score 0.82 drops a box per frame, so the file no longer matches
    assert main([*base, "--min-score", "0.82", "--embeddings", str(npz)]) == 2
    assert "do not match" in capsys.readouterr().err
    assert main([*base, "--embeddings", str(npz), "--reid-model", str(model)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*base, "--appearance", "reid"]) == 2
    assert "--reid-model" in capsys.readouterr().err
    assert main([*base, "--appearance", "roi", "--embeddings", str(npz)]) == 2
    assert "holds 'reid' embeddings" in capsys.readouterr().err
    assert main([*base, "--appearance", "off", "--save-embeddings", str(npz)]) == 2
    assert main([*base, "--reid-model", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--reid-model", str(model), "--reid-size", "16x4"]) == 2
    assert "height 8" in capsys.readouterr().err
