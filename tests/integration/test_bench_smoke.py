"""Issue 19 (4): every ``roitrack bench`` subcommand, through the CLI, at its smallest size: it runs, and the JSON it
writes (``<out>/<name>.json``) has its keys. Nothing ran the benchmarks before, so a bench broken by a change in
the service (``bench overhead`` stopped on a detection at the frame's edge) shipped unnoticed.

``make bench-smoke`` runs this file alone; ``make test`` runs it with the rest. The figures are not checked here
(tests/integration/test_bench_service.py and test_bench_stages.py check the values); only that each bench works
end to end and writes what its readers (docs tables, README figures) rely on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roitrack_cli import main as cli
from roitrack_cli.commands.bench import BENCHES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = ["--size", "64", "--dets", "5"]

# bench -> (its smallest arguments, the keys its JSON must have)
PERFORMANCE: dict[str, tuple[list[str], set[str]]] = {
    "stages": (
        ["--arch", "yolov7-tiny", "--frames", "1", *SMALL],
        {"bench", "machine", "stages", "results", "table"},
    ),
    "overhead": (
        ["--frames", "1", *SMALL],
        {"bench", "machine", "in_process_ms", "grpc_ms", "grpc_batching_off_ms", "overhead_share", "table"},
    ),
    "scaling": (
        ["--streams", "1", "--duration", "1", "--warmup", "0", *SMALL],
        {"bench", "machine", "results", "runner_ms_per_frame_by_batch", "table", "plot"},
    ),
    "soak": (
        ["--streams", "1", "--duration", "2", *SMALL],
        {"bench", "machine", "samples", "rss_growth", "table"},
    ),
    "floor": (
        ["--frames", "1", *SMALL],
        {"bench", "machine", "flops_per_frame", "matmul_gflops_per_s", "floor_ms_per_frame", "table"},
    ),
    "snapshot": (
        ["--frames", "1", *SMALL],
        {"bench", "machine", "rows", "interval_s", "pipeline_frame_ms", "table"},
    ),
}
SEQUENCE_BENCHES = ("oracle", "embeddings", "appearance", "mot", "ablation", "reid")
# run through the CLI at their smallest size, with their JSON checked, in tests/integration/test_bench_stages.py
BACKEND_BENCHES = ("backends", "contention")


def _written(out: Path, name: str) -> dict:
    data = json.loads((out / f"{name}.json").read_text())
    assert (out / f"{name}.md").read_text().strip()
    return data


def test_every_bench_has_a_smoke_run() -> None:
    """A bench added to `roitrack bench` without a smoke run here fails this test."""
    import argparse

    from roitrack_cli.commands.bench import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(BENCHES) <= set(sub.choices)
    assert set(sub.choices) == set(PERFORMANCE) | set(SEQUENCE_BENCHES) | set(BACKEND_BENCHES)


@pytest.mark.parametrize("name", sorted(PERFORMANCE))
def test_performance_bench_runs_and_writes_its_keys(name: str, tmp_path: Path, capsys) -> None:
    if name == "snapshot":
        from tests.integration.redis_harness import redis_binary

        redis_binary()  # skips (or fails in CI) without redis-server, as the state tests do
    argv, keys = PERFORMANCE[name]
    assert cli.main(["bench", name, *argv, "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    data = _written(tmp_path, name)
    assert keys <= set(data), sorted(keys - set(data))
    assert data["bench"] == printed["bench"] == name


def test_oracle_runs_and_writes_its_keys(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    argv = [
        "--seq",
        str(pets_sequence),
        "--frames",
        "1-20",
        "--seeds",
        "1",
        "--noise",
        "0.1",
        "--wrong",
        "0.3",
    ]
    assert cli.main(["bench", "oracle", *argv, "--json", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    data = _written(tmp_path, "oracle")
    assert {"source", "score_clip", "seeds", "sequences"} <= set(data), sorted(data)
    assert data["score_clip"] is True  # the default: PETS09 scores reach 138.9 / 100


def test_embeddings_runs_and_writes_its_keys(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    """An embedding file of the first 30 frames (each ground-truth person's own vector, as a good ReID model would
    give; no images needed), two spans, two frame rates; random and constant give exactly motion only."""
    import numpy as np

    from benchmarks.oracle import EmbeddingSpec, gt_identities, oracle_embeddings
    from tracker_core.evaluation import read_detections, read_gt, read_seqinfo
    from tracker_core.evaluation.embedding_file import save_embeddings

    seq = _head(pets_sequence, tmp_path / "PETS09-head", 30)
    frames = read_detections(seq / "det" / "det.txt", read_seqinfo(seq).seq_length, 100, score_clip=True)
    emb = oracle_embeddings(
        gt_identities(frames, read_gt(seq / "gt" / "gt.txt")), EmbeddingSpec("oracle"), 0, 16
    )
    assert emb is not None
    save_embeddings(tmp_path / "ids.npz", frames, [np.asarray(e, np.float32) for e in emb], {"kind": "reid"})
    argv = ["--seq", str(seq), "--embeddings", f"ids={tmp_path / 'ids.npz'}", "--frames", "1-30", "11-30"]
    argv += ["--steps", "1", "2", "--random-seeds", "2", "--oracle-seeds", "1", "--score-clip"]
    assert cli.main(["bench", "embeddings", *argv, "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    data = _written(tmp_path, "embeddings")
    assert {"source", "files", "slices", "targets", "command"} <= set(data), sorted(data)
    assert data["command"] == printed["command"] and data["command"].startswith("roitrack bench embeddings ")
    assert [(s["span"], s["step"]) for s in data["slices"]] == [
        ("1-30", 1),
        ("11-30", 1),
        ("1-30", 2),
        ("11-30", 2),
    ]
    for s in data["slices"]:
        assert [r["label"] for r in s["rows"]] == [
            "motion",
            "ids",
            "random",
            "constant",
            "perfect",
            "wrong 0.3",
        ]
    assert data["targets"]["random"]["identical_to_motion_everywhere"] is True
    assert data["targets"]["constant"]["identical_to_motion_everywhere"] is True
    assert (
        cli.main(["bench", "embeddings", "--seq", str(seq), "--embeddings", "motion=x.npz", "--no-write"])
        == 2
    )


def test_appearance_runs_end_to_end_without_weights(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    """Its defaults need no detector file (a random yolov7-tiny is written) and read PETS09's scores as PETS09
    needs (clipped); the smallest split, one epoch, one gap, both tracking paths."""
    argv = [
        "--seq",
        str(pets_sequence),
        "--split",
        "1-12:13-24",
        "--gaps",
        "5",
        "--work",
        str(tmp_path / "work"),
    ]
    argv += ["--train-args", "--epochs 1 --input-size 64 --holdout-gaps 2"]
    assert cli.main(["bench", "appearance", *argv, "--json", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    data = _written(tmp_path, "appearance")
    assert {"command", "train", "test", "weights", "encoder", "val", "tracking", "targets"} <= set(data)
    assert set(data["tracking"]) == {"eval-mot", "serve+stream"}
    assert data["weights"].startswith("random yolov7-tiny")
    for path in data["tracking"].values():
        assert set(path) == {"off", "on"} and {"HOTA", "MOTA", "IDF1", "IDSW"} <= set(path["on"])


def _head(seq: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` frames of a MOTChallenge sequence (images linked, det/gt rows cut, seqinfo rewritten)."""
    (dst / "img1").mkdir(parents=True)
    for sub in ("det", "gt"):
        (dst / sub).mkdir()
        rows = (seq / sub / f"{sub}.txt").read_text().splitlines()
        (dst / sub / f"{sub}.txt").write_text(
            "\n".join(r for r in rows if int(r.split(",")[0]) <= frames) + "\n"
        )
    for i in range(1, frames + 1):
        (dst / "img1" / f"{i:06d}.jpg").symlink_to(seq / "img1" / f"{i:06d}.jpg")
    ini = (seq / "seqinfo.ini").read_text().splitlines()
    (dst / "seqinfo.ini").write_text(
        "\n".join(f"seqLength={frames}" if ln.startswith("seqLength") else ln for ln in ini) + "\n"
    )
    return dst


def test_mot_runs_and_writes_its_keys(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    seq = _head(pets_sequence, tmp_path / "data" / "PETS09-S2L1-head", 20)
    argv = [str(tmp_path / "data"), "--trackers", "trackers_SORT", "--cache", str(tmp_path / "cache")]
    assert cli.main(["bench", "mot", *argv, "--json", "--out", str(tmp_path / "mot")]) == 0
    capsys.readouterr()
    data = _written(tmp_path, "mot")
    assert {"groups", "sequences", "trackers", "missing", "cache"} <= set(data), sorted(data)
    assert seq.name in json.dumps(data["sequences"])


def test_ablation_runs_and_writes_its_keys(pets_sequence: Path, tmp_path: Path, capsys) -> None:
    _head(pets_sequence, tmp_path / "data" / "PETS09-S2L1-head", 20)
    argv = [str(tmp_path / "data"), "--variant", '{"confirm_hits": 2}']
    assert cli.main(["bench", "ablation", *argv, "--json", "--out", str(tmp_path / "ablation")]) == 0
    capsys.readouterr()
    data = _written(tmp_path, "ablation")
    assert {"groups"} <= set(data), sorted(data)
    (group,) = data["groups"]
    assert [r["change"] for r in group["rows"]][1:] and {"HOTA", "IDF1"} <= set(group["rows"][0])


def test_reid_runs_and_writes_its_keys(tmp_path: Path, capsys) -> None:
    from tests.reid_models import colour_model

    model = colour_model(tmp_path / "colour.onnx")
    argv = ["--reid-model", str(model), "--streams", "1", "--duration", "1", "--warmup", "0", *SMALL]
    assert cli.main(["bench", "reid", *argv, "--json", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    data = _written(tmp_path, "reid")
    assert {"bench", "reid_model", "reid_model_sha256", "machine", "results", "table"} <= set(data), sorted(
        data
    )
