"""``roitrack demo`` end to end on a machine without weights or network: it says so, runs, and scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_offline_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROITRACK_WEIGHTS"}
    out = tmp_path / "demo_out"
    proc = subprocess.run(
        [sys.executable, "-m", "roitrack_cli.main", "demo", "--out-dir", str(out)],
        cwd=tmp_path,  # no weights/ folder here
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OFFLINE DEMO: no detector weights found" in proc.stdout
    assert "MOTA" in proc.stdout and "IDF1" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answered"] == summary["sent"] == 150 and summary["errors"] == 0
    assert summary["appearance"] is True  # the random backbone + encoder path ran
    # --backend auto (the default): it says which backend and precision it chose, and chose the fastest it measured
    # among those that passed the parity check
    sel = summary["inference_selection"]
    assert summary["inference"] == sel["chosen"] and f"inference: {sel['chosen']}" in proc.stdout
    timed = [c for c in sel["candidates"] if "ms" in c and c["parity"]["passed"]]
    full = max(c["timed_rounds"] for c in timed)
    fastest = min((c for c in timed if c["timed_rounds"] == full), key=lambda c: c["ms"])
    assert sel["chosen"] == f"{fastest['backend']}/{fastest['precision']}"
    assert summary["server_stage_ms"]["inference"] > 0 and summary["server_stage_ms"]["encoder"] > 0
    scores = summary["scores"]
    assert scores["MOTA"] > 60 and scores["IDF1"] > 60, scores
    assert 5 <= summary["tracks"] <= 20
    rows = (out / "results.txt").read_text().splitlines()
    assert len(rows) > 300 and all(len(r.split(",")) == 10 for r in rows)
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 150
    cap.release()
