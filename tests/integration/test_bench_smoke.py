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
SEQUENCE_BENCHES = ("oracle", "appearance")


def _written(out: Path, name: str) -> dict:
    data = json.loads((out / f"{name}.json").read_text())
    assert (out / f"{name}.md").read_text().strip()
    return data


def test_every_bench_has_a_smoke_run() -> None:
    """A bench added to `roitrack bench` without a smoke run here fails this test."""
    assert set(BENCHES) | {"oracle"} == set(PERFORMANCE) | set(SEQUENCE_BENCHES)


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
