"""``torchrun --nproc_per_node=2 -m training.train`` on CPU (gloo): every anchor frame seen exactly once."""

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
        "-m", "training.train", "--data", str(seq), "--weights", str(det), "--out", str(out),
        "--epochs", "2", "--input-size", "128", "--batch-frames", "5", "--frame-step", "1", "--no-progress",
        "--score-scale", "100",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-4000:]
    recs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    start = next(r for r in recs if r["type"] == "start")
    assert start["world"] == 2 and start["num_samples"] == 11
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert len(epochs) == 2
    for e in epochs:
        # 11 anchor frames over 2 ranks: 6 + 5, no padding, no repeats (uneven shards -> DDP join)
        assert sorted(e["samples_per_rank"]) == [5, 6]
        assert e["samples"] == e["unique_samples"] == e["dataset_size"] == 11
    assert (out / "encoder.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(out / "encoder.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["roitrack"])
    assert meta["training"]["world"] == 2
