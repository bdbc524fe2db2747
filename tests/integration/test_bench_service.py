"""``roitrack bench overhead|scaling|soak`` end to end on tiny sizes, against real ``roitrack serve`` processes
on loopback: JSON with the right keys and sane values (the figures themselves are machine-dependent)."""

from __future__ import annotations

import json
import math

import pytest

from roitrack_cli import main as cli

pytestmark = pytest.mark.slow  # each starts real server processes (> 20 s on 2 shared cores)


def _run(argv: list[str], capsys) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _ordered(lat: dict) -> bool:
    return 0 < lat["p50"] <= lat["p95"] <= lat["p99"]


def test_overhead_compares_grpc_with_the_in_process_pipeline(tmp_path, capsys):
    r = _run(
        [
            "bench",
            "overhead",
            "--size",
            "160",
            "--frames",
            "5",
            "--dets",
            "10",
            "--vs-reference",
            "--json",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert r["frames"] >= 5
    # --vs-reference: the same frames through a torch fp32 server, interleaved, for the whole-frame speedup
    assert r["reference_ms"] > 0 and r["frame_speedup_vs_reference"] == pytest.approx(
        r["reference_ms"] / r["grpc_ms"]
    )
    assert r["backend"] == r["backend_selection"]["chosen"]  # auto, resolved once and given to every server
    for key in ("in_process_ms", "grpc_ms", "grpc_batching_off_ms"):
        assert r[key] > 0, key
    for key in ("overhead_share", "overhead_share_batching_off", "overhead_share_min"):
        assert math.isfinite(r[key]) and r[key] > -1, key
    assert r["overhead_ms"] == pytest.approx(r["grpc_ms"] - r["in_process_ms"])
    assert r["overhead_share"] == pytest.approx(r["grpc_ms"] / r["in_process_ms"] - 1)
    # the server-side timings come from the responses: the server's total is within the client's round trip
    side = r["server_side_ms"]["grpc"]
    assert 0 < side["server_inference_ms"] <= side["server_total_ms"]
    assert side["server_total_ms"] <= r["mean_ms"]["grpc"] * 1.5
    assert {"decode", "inference", "encoder", "tracking"} <= set(r["server_side_ms"]["in_process"])
    assert "overhead" in (tmp_path / "overhead.md").read_text()


def test_scaling_reports_fps_latency_and_batching_per_stream_count(tmp_path, capsys):
    r = _run(
        [
            "bench",
            "scaling",
            "--size",
            "160",
            "--streams",
            "2",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--dets",
            "10",
            "--json",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert [row["streams"] for row in r["results"]] == [1, 2]
    for row in r["results"]:
        for mode in ("on", "off"):
            m = row[mode]
            assert m["fps"] > 0 and m["answered"] > 0 and m["errors"] == 0
            assert _ordered(m["latency_ms"])
            assert m["dropped"] >= 0 and sum(m["batch_sizes"].values()) == m["answered"]
        assert set(row["off"]["batch_sizes"]) == {"1"}  # batching off: every frame its own forward
        assert max(int(b) for b in row["on"]["batch_sizes"]) <= row["streams"]
        assert row["speedup"] == pytest.approx(row["on"]["fps"] / row["off"]["fps"])
    rc = r["runner_ms_per_frame_by_batch"]
    assert set(rc) == {"1", "2"}  # batch sizes up to the largest stream count
    for v in rc.values():
        assert 0 < v["ms_per_frame_min"] <= v["ms_per_frame_median"]
        assert {"decode", "inference", "encoder"} <= set(v["stage_ms"])
    assert r["runner_batch_gain"] == pytest.approx(rc["1"]["ms_per_frame_min"] / rc["2"]["ms_per_frame_min"])
    assert "model runner alone" in (tmp_path / "scaling.md").read_text()
    assert (tmp_path / "scaling.png").stat().st_size > 1000


def test_soak_samples_server_memory_and_tracks(tmp_path, capsys):
    r = _run(
        [
            "bench",
            "soak",
            "--size",
            "160",
            "--streams",
            "2",
            "--duration",
            "5",
            "--dets",
            "10",
            "--json",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert len(r["samples"]) >= 5
    assert all(s["rss_mb"] > 50 for s in r["samples"])  # a server holding torch and a detector
    assert [s["t_s"] for s in r["samples"]] == sorted(s["t_s"] for s in r["samples"])
    assert math.isfinite(r["rss_growth"]) and abs(r["rss_growth"]) < 1
    assert r["tracks_end"] > 0  # the streams' client boxes became tracks
    assert r["service"]["answered"] > 0 and _ordered(r["service"]["latency_ms"])
    assert (tmp_path / "soak.png").stat().st_size > 1000
