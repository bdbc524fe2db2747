"""``roitrack train`` end to end on a tiny synthetic sequence: outputs, log, plot, resumable cache and training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from roitrack_cli.main import main
from tests.integration.encoder_data import make_detector_file, make_sequence
from tracker_core.evaluation import ScoreRule

pytestmark = pytest.mark.timeout(300)

SCORES = ScoreRule(100.0)  # make_sequence writes det.txt scores on MOT15's 0..100 scale


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    seq = make_sequence(root / "seq", frames=12)
    det = make_detector_file(root / "det.safetensors")
    return root, seq, det


def _train(root: Path, seq: Path, det: Path, out: str, *extra: str) -> int:
    return main(
        [
            "train", "--data", str(seq), "--weights", str(det), "--out", str(root / out),
            "--epochs", "2", "--input-size", "128", "--batch-frames", "4", "--frame-step", "1", "--no-progress",
            "--cache-dir", str(root / "cache"), "--score-scale", "100", *extra,
        ]
    )  # fmt: skip


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_encoder_log_and_plot(data):
    from tracker_core.detector import load_detector
    from tracker_core.encoder import load_encoder

    root, seq, det = data
    old = ("--features", "spp", "--arch", "conv", "--holdout", "0")  # the conv encoder, no held-out part
    assert (
        _train(root, seq, det, "straight", *old, "--val", str(seq), "--val-gap", "4", "--val-stride", "2")
        == 0
    )
    out = root / "straight"
    detector = load_detector(det)
    enc = load_encoder(out / "encoder.safetensors", detector=detector)
    meta = enc.meta
    assert meta.detector_arch == "yolov7-tiny" and meta.detector_sha256 == detector.weights_sha256
    assert meta.features == "spp" and meta.tap_channels == {"32": 256} and meta.roi_size == 10
    assert meta.embed_dim == 128 and meta.training["epochs"] == 2 and meta.training["steps"] == 6
    assert set(meta.validation) == {"encoder", "raw_features", "center_distance", "color_histogram"}
    recs = _records(out / "train_log.jsonl")
    epochs = [r for r in recs if r["type"] == "epoch"]
    steps = [r for r in recs if r["type"] == "step"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert [s["step"] for s in steps] == list(range(1, 7))
    assert all(e["samples"] == e["unique_samples"] == e["dataset_size"] == 12 for e in epochs)
    assert all(s["cross_frame"] > 0 for s in steps)  # tracklet positives reach the loss
    assert epochs[-1]["val"]["encoder"]["num_valid"] > 0
    assert (out / "train_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


HOLD = ("--holdout", "0.5", "--holdout-gaps", "1,2", "--patience", "0")


def test_default_mix_encoder_holds_out_the_tail_and_keeps_the_best(data):
    from tracker_core.encoder import MixEncoder, load_encoder

    root, seq, det = data
    assert _train(root, seq, det, "mix", *HOLD) == 0
    enc = load_encoder(root / "mix" / "encoder.safetensors")
    assert isinstance(enc, MixEncoder) and enc.meta.features == "spp+s8+pixels2"
    assert enc.meta.tap_channels == {"32": 256, "8": 64, "1": 12} and enc.meta.blocks == (
        "raw",
        "color",
        "learned",
    )
    recs = _records(root / "mix" / "train_log.jsonl")
    start = recs[0]
    assert start["type"] == "start" and start["num_samples"] == 6  # 12 frames, the last 6 held out
    before = [r for r in recs if r["type"] == "holdout"]
    assert len(before) == 1 and before[0]["epoch"] == -1  # the untrained encoder is scored first
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert all("holdout_score" in e and "block_weights" in e["holdout"] for e in epochs)
    scores = {-1: before[0]["score"], **{e["epoch"]: e["holdout_score"] for e in epochs}}
    best = enc.meta.training["best_epoch"]
    assert enc.meta.training["holdout_score"] == pytest.approx(max(scores.values()))
    assert scores[best] == max(scores.values())
    held = enc.meta.training["holdout"]
    assert {"encoder", "raw_features", "color_histogram", "center_distance"} <= set(held["1"])
    assert held["1"]["encoder"]["num_valid"] > 0


def test_resume_continues_from_saved_step(data):
    root, seq, det = data
    assert _train(root, seq, det, "resumed", *HOLD, "--stop-after-epochs", "1") == 0
    first = _records(root / "resumed" / "train_log.jsonl")
    assert [r["step"] for r in first if r["type"] == "epoch"] == [2]
    assert _train(root, seq, det, "resumed", *HOLD) == 0
    recs = _records(root / "resumed" / "train_log.jsonl")
    assert [r["step"] for r in recs if r["type"] == "step"] == list(range(1, 5))
    assert [r["epoch"] for r in recs if r["type"] == "epoch"] == [0, 1]
    # one epoch + resume gives exactly the weights of two straight epochs
    if not (root / "mix" / "encoder.safetensors").exists():
        assert _train(root, seq, det, "mix", *HOLD) == 0
    a = load_file(str(root / "mix" / "encoder.safetensors"))
    b = load_file(str(root / "resumed" / "encoder.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max().item() <= 1e-6, k


def test_cache_is_resumable(data, tmp_path):
    from tracker_core.detector import load_detector
    from tracker_core.features import parse_feature_spec
    from training.encoder.cache import extract_source, load_cache
    from training.sources import open_source

    _, seq, det = data
    detector = load_detector(det)
    spec = parse_feature_spec("spp+s8+pixels")
    src = open_source(seq)
    cdir = extract_source(
        src, detector, spec, tmp_path, size=(96, 128), shard_frames=5, progress=False, score_rule=SCORES
    )
    shards = sorted(cdir.glob("shard_*.safetensors"))
    assert len(shards) == 3
    full = load_cache(cdir, spec.strides)
    # interrupt: the last shard and the completion mark are gone; a rerun rebuilds only what is missing
    man = json.loads((cdir / "manifest.json").read_text())
    (cdir / "manifest.json").write_text(json.dumps({**man, "complete": False}))
    shards[1].unlink()
    kept = {p: p.stat().st_mtime_ns for p in (shards[0], shards[2])}
    again = extract_source(
        src, detector, parse_feature_spec("spp"), tmp_path, size=(96, 128), progress=False, score_rule=SCORES
    )
    assert again == cdir  # a cache with a superset of the taps is reused
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert shards[1].is_file()
    back = load_cache(cdir, spec.strides)
    assert back.frames.tolist() == full.frames.tolist() == list(range(1, 13))
    for s in spec.strides:
        assert (back.maps[s].float() - full.maps[s].float()).abs().max().item() == 0
    assert back.maps[1].dtype.is_floating_point is False and back.maps[8].shape[1] == 64
    assert sum(len(b) for b in back.boxes) == 36


def test_bad_input_exits_2(data, capsys):
    root, seq, det = data
    assert main(["train", "--data", str(root / "nope"), "--weights", str(det), "--out", str(root / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _train(root, seq, det, "y", "--features", "spp+sift") == 2
    assert "unknown feature tap" in capsys.readouterr().err


@pytest.mark.slow
def test_val_from_cache_equals_detector_path_and_frame_step(data, tmp_path):
    """Per-epoch validation reads the stage-1 maps; it must match running the detector (up to fp16 storage)."""
    from tracker_core.detector import load_detector
    from tracker_core.features import parse_feature_spec
    from training.encoder.cache import extract_source, load_cache
    from training.encoder.val_data import mot_pairs
    from training.encoder.validate import extract_val_features, val_features_from_cache
    from training.sources import open_source

    _, seq, det = data
    detector = load_detector(det)
    spec = parse_feature_spec("spp+pixels")
    src = open_source(seq)
    cached = load_cache(
        extract_source(src, detector, spec, tmp_path, size=(96, 128), progress=False, score_rule=SCORES),
        spec.strides,
    )
    pairs = mot_pairs(seq, gap=4, stride=3)
    a = val_features_from_cache(pairs, cached, spec)
    b = extract_val_features(pairs, detector, spec, (96, 128))
    assert a is not None
    for x, y in zip(a.pre + a.now, b.pre + b.now, strict=True):
        assert x.shape == y.shape
        assert (x - y).abs().max().item() <= 2e-3 * max(1.0, y.abs().max().item())
    # every 3rd frame: frames 1, 4, 7, 10 only, so pairs needing frame 5 fall back (None)
    step3 = load_cache(
        extract_source(
            src, detector, spec, tmp_path, size=(96, 128), frame_step=3, progress=False, score_rule=SCORES
        ),
        spec.strides,
    )
    assert step3.frames.tolist() == [1, 4, 7, 10]
    assert val_features_from_cache(pairs, step3, spec) is None


def test_train_reads_det_scores_by_the_one_explicit_rule(data, tmp_path, capsys):
    """Issue 12 (10): training divided det.txt scores by their maximum whenever it exceeded 1 (a guess); now it
    reads them like every other command: an out-of-range score is exit 2 naming the flags."""
    from training.sources import open_source, read_detections

    _, seq, det = data
    args = ["train", "--data", str(seq), "--weights", str(det), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--cache-dir", str(tmp_path / "c"), "--epochs", "1", "--input-size", "128"]) == 2
    err = capsys.readouterr().err
    assert "outside [0, 1]" in err and "--score-scale 1 " in err and "--score-clip" in err
    src = open_source(seq)
    by_100 = read_detections(src, ScoreRule(100.0))
    by_max = read_detections(src, ScoreRule.from_flags("max"))  # the old behaviour, now asked for explicitly
    assert by_100 is not None and by_max is not None
    assert by_100[1][1].tolist() == pytest.approx([0.80, 0.85, 0.90])
    assert by_max[1][1].tolist() == pytest.approx([80 / 90, 85 / 90, 1.0])


def test_trains_from_a_sequence_and_a_video_file_together(data):
    import cv2

    from training.encoder.cache import load_cache
    from training.sources import count_frames, open_source

    root, seq, det = data
    frames = sorted((seq / "img1").glob("*.jpg"))
    first = cv2.imread(str(frames[0]))
    video = root / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 7.0, (first.shape[1], first.shape[0]))
    for f in frames:
        vw.write(cv2.imread(str(f)))
    vw.release()
    src = open_source(video)
    assert src.kind == "video" and count_frames(src) == len(frames)
    out = root / "two"
    assert _train(root, seq, det, "two", *HOLD, "--data", str(video), "--epochs", "1") == 0
    caches = sorted(d for d in (root / "cache").iterdir() if d.name.startswith("clip-"))
    assert caches, "the video got its own stage-1 cache"
    cached = load_cache(caches[0], (32,))
    assert len(cached) == len(frames)  # every decoded frame (boxes: the random detector's own, maybe none)
    with_boxes = sum(1 for b in cached.boxes[: len(frames) // 2] if len(b))
    recs = _records(out / "train_log.jsonl")
    assert recs[0]["num_samples"] == 6 + with_boxes  # the training halves of both inputs
