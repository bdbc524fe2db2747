"""Weight files that lie about their sizes are refused before anything large is allocated (issue 12, item 7).

Each case runs the real CLI in a fresh process and reads that process's own peak RSS (``ru_maxrss``), compared with
the same process refusing a file that is merely missing (the import cost of the command)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tracker_core.detector.checkpoint_unpickler import read_checkpoint
from tracker_core.errors import WeightsError

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HEADROOM_MB = 150  # what a refusal may cost above the baseline process

_PEAK = """
import resource, sys
from roitrack_cli.main import main
rc = main(sys.argv[1:])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""


def _run(args: list[str]) -> tuple[int, str, float]:
    """``roitrack ARGS`` in a fresh process: exit code, stderr, peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, "-c", _PEAK, *args], capture_output=True, text=True, env=env, timeout=240, cwd=REPO
    )
    peak = [ln for ln in p.stderr.splitlines() if ln.startswith("PEAK_KB")]
    assert peak, p.stderr[-3000:]
    return p.returncode, p.stderr, int(peak[-1].split()[1]) / 1024


def _storage_bomb(path: Path, mbytes: int) -> Path:
    """A torch.save checkpoint whose one float storage is ``mbytes`` MB of zeros, deflated (~1000:1)."""
    buf = io.BytesIO()
    torch.save({"model": torch.zeros(4)}, buf)
    numel = mbytes * 1024 * 1024 // 4
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src:
        pkl_name = next(n for n in src.namelist() if n.endswith("data.pkl"))
        pkl = src.read(pkl_name)
        # the pickle names the storage's element count (BININT1 4) in its persistent id and the tensor size
        pkl = pkl.replace(b"K\x04", b"J" + numel.to_bytes(4, "little"))
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename == pkl_name:
                    dst.writestr(info.filename, pkl)
                elif "/data/" in info.filename and info.filename.endswith("/0"):
                    with dst.open(info.filename, "w", force_zip64=True) as f:
                        zero = bytes(1 << 20)
                        for _ in range(mbytes):
                            f.write(zero)
                else:
                    dst.writestr(info.filename, src.read(info))
    return path


def test_decompression_bomb_checkpoint_is_refused_without_inflating(tmp_path: Path) -> None:
    bomb = _storage_bomb(tmp_path / "bomb.pt", 768)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    rc, err, peak = _run(["convert-weights", str(bomb), str(tmp_path / "out.safetensors")])
    rc0, _, base = _run(["convert-weights", str(tmp_path / "missing.pt"), str(tmp_path / "out.safetensors")])
    assert rc == 2 and rc0 == 2, err
    assert "decompression bomb" in err, err
    assert peak < base + HEADROOM_MB, (peak, base)
    assert not (tmp_path / "out.safetensors").exists()


def test_overlapping_stride_tensor_is_refused_before_any_copy(tmp_path: Path) -> None:
    """A 4-byte storage viewed as 10^9 elements (stride 0): copying it to fp32 would take 4 GB."""
    path = tmp_path / "expand.pt"
    torch.save({"model": torch.zeros(1).expand(1_000_000_000)}, path)
    assert path.stat().st_size < 10_000
    with pytest.raises(WeightsError, match="overlapping strides"):
        read_checkpoint(str(path))


def _meta(nc: int, names: object = None) -> str:
    return json.dumps(
        {
            "format": "roitrack-yolov7/1",
            "arch": "yolov7-tiny",
            "nc": nc,
            "names": names if names is not None else [str(i) for i in range(nc)],
            "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
            "strides": [8, 16, 32],
            "source_sha256": "0" * 64,
        }
    )


def _serve(weights: Path) -> list[str]:
    return ["serve", "--weights", str(weights), "--port", "0", "--metrics-port", "0", "--device", "cpu"]


def test_metadata_declaring_a_million_classes_is_refused_before_building(tmp_path: Path) -> None:
    evil = tmp_path / "nc.safetensors"
    save_file({"model.0.conv.weight": torch.zeros(1)}, str(evil), metadata={"roitrack": _meta(1_000_000)})
    assert evil.stat().st_size < 16 * 1024 * 1024
    rc, err, peak = _run(_serve(evil))
    rc0, _, base = _run(_serve(tmp_path / "missing.safetensors"))
    assert rc == 2 and rc0 == 2, err
    assert "nc=1000000" in err and "1..2000" in err, err
    assert peak < base + HEADROOM_MB, (peak, base)


def test_header_shapes_are_checked_before_the_network_is_built(tmp_path: Path) -> None:
    """Valid metadata, but tensors of the wrong shape: refused from the header, naming the tensor."""
    bad = tmp_path / "shapes.safetensors"
    save_file({"model.0.conv.weight": torch.zeros(2, 2)}, str(bad), metadata={"roitrack": _meta(80)})
    rc, err, _ = _run(_serve(bad))
    assert rc == 2, err
    assert "model.0.conv.weight has shape [2, 2]" in err, err


@pytest.mark.parametrize("where", ["detector", "encoder"])
def test_deeply_nested_metadata_json_exits_2_with_a_message(tmp_path: Path, where: str) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    path = tmp_path / f"{where}.safetensors"
    if where == "detector":
        save_file({"x": torch.zeros(1)}, str(path), metadata={"roitrack": deep})
        args = _serve(path)
    else:
        save_file({"x": torch.zeros(1)}, str(path), metadata={"roitrack": deep})
        args = ["serve", "--random-weights", "--encoder", str(path), "--port", "0", "--metrics-port", "0"]
    rc, err, _ = _run(args)
    assert rc == 2, err
    assert "nested too deeply" in err and "Traceback" not in err, err
