"""``torchrun --nproc_per_node=2 -m training.encoder.train`` on CPU (gloo): every anchor frame seen exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.integration.encoder_data import make_detector_file, make_sequence


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_process_gloo_run_sees_each_sample_once(tmp_path):
    seq = make_sequence(tmp_path / "seq", frames=11)
    det = make_detector_file(tmp_path / "det.safetensors")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training.encoder.train", "--data", str(seq), "--weights", str(det), "--out", str(out),
        "--epochs", "2", "--input-size", "128", "--batch-frames", "5", "--frame-step", "1", "--no-progress",
        "--score-scale", "100",
        "--holdout-gaps", "1", "--patience", "0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-4000:]
    recs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    start = next(r for r in recs if r["type"] == "start")
    assert start["world"] == 2 and start["num_samples"] == 9  # 11 frames, the last 2 held out
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert len(epochs) == 2
    for e in epochs:
        # 9 anchor frames over 2 ranks: 5 + 4, no padding, no repeats (uneven shards -> DDP join)
        assert sorted(e["samples_per_rank"]) == [4, 5]
        assert e["samples"] == e["unique_samples"] == e["dataset_size"] == 9
        assert "holdout_score" in e  # rank 0 scored the held-out frames
    assert (out / "encoder.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(out / "encoder.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["roitrack"])
    assert meta["training"]["world"] == 2
