"""The benchmark machinery that needs no model: percentiles, the synthetic scene, tables, output, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import BenchOptions, SyntheticScene, finish, md_table, percentiles_ms
from roitrack_cli import main as cli


def test_percentiles_are_ordered_and_in_milliseconds():
    rng = np.random.default_rng(1)
    p = percentiles_ms(list(rng.exponential(0.05, size=500)))
    assert 0 < p["p50"] <= p["p95"] <= p["p99"]
    assert p["p50"] < p["mean"] < p["p99"]  # exponential: median below mean
    assert percentiles_ms([0.010, 0.010, 0.010])["p99"] == pytest.approx(10.0)


def test_percentiles_of_nothing_are_nan_not_zero():
    assert all(math.isnan(v) for v in percentiles_ms([]).values())


def test_scene_is_deterministic_and_boxes_are_valid_xyxy_in_the_frame():
    a, b = SyntheticScene(n=20, seed=3), SyntheticScene(n=20, seed=3)
    for _ in range(5):
        fa, ba, sa, ia = a.step(0.1)
        fb, bb, sb, ib = b.step(0.1)
        assert np.array_equal(fa, fb) and np.array_equal(ba, bb) and np.array_equal(ia, ib)
        assert np.array_equal(sa, sb)
    assert fa.shape == (576, 768, 3) and fa.dtype == np.uint8
    assert ba.shape == (20, 4) and ba.dtype == np.float32
    assert (ba[:, 2] > ba[:, 0]).all() and (ba[:, 3] > ba[:, 1]).all()
    assert ba.min() > -5 and ba[:, 2].max() < 768 + 5 and ba[:, 3].max() < 576 + 5
    assert ((sa > 0) & (sa <= 1)).all()


def test_scene_replaces_objects_that_leave_so_ids_keep_coming():
    scene = SyntheticScene(n=10, seed=0)
    for _ in range(300):  # 30 s at up to 90 px/s: most objects cross the 768 px frame
        _, boxes, _, ids = scene.step(0.1)
    assert len(boxes) == 10 and len(set(ids.tolist())) == 10
    assert ids.max() > 10  # new identities were born


def test_markdown_table_formats_floats_and_nan():
    t = md_table(["a", "b"], [[1.23456, float("nan")], ["x", 3]])
    lines = t.splitlines()
    assert lines[0] == "| a | b |"
    assert lines[1] == "| --- | --- |"
    assert lines[2] == "| 1.23 | - |"
    assert lines[3] == "| x | 3 |"


def test_finish_writes_table_and_plot_and_prints_json(tmp_path, capsys):
    plotted: list[Path] = []

    def plot(result: dict, path: Path) -> None:
        path.write_bytes(b"png")
        plotted.append(path)

    opts = BenchOptions(out=str(tmp_path / "bench"))
    finish(
        "demo", {"bench": "demo", "x": np.float32(1.5)}, lambda r: f"| x |\n| {r['x']} |", opts, True, plot
    )
    out = json.loads(capsys.readouterr().out)
    assert out["x"] == 1.5
    assert (tmp_path / "bench" / "demo.md").read_text().startswith("| x |")
    assert plotted == [tmp_path / "bench" / "demo.png"]
    assert out["plot"].endswith("demo.png") and out["table"].endswith("demo.md")
    # the same object written beside the table, numpy values included
    assert json.loads((tmp_path / "bench" / "demo.json").read_text()) == out


def test_finish_without_json_prints_the_table_and_no_write_writes_nothing(tmp_path, capsys):
    opts = BenchOptions(out=str(tmp_path / "bench"), write=False)
    finish("demo", {"bench": "demo"}, lambda r: "| table |", opts, False)
    assert capsys.readouterr().out.strip() == "| table |"
    assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("name", ["stages", "overhead", "scaling", "soak", "floor"])
def test_each_bench_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", name, "--help"])
    assert exc.value.code == 0
    assert "--json" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "stages", "--size", "100"],  # not a multiple of 32
        ["bench", "scaling", "--streams", "0"],
        ["bench", "soak", "--duration", "-1"],
        ["bench", "scaling", "--fps", "-2"],
        ["bench", "nope"],
        ["bench"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert cli.main(["bench", "stages", "--device", "cuda", "--no-write"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
