"""``roitrack convert-weights``: both shared official-format checkpoints, with no ``models`` module importable,
in a clean subprocess; bad inputs exit 2 with a message and leave no output behind."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from roitrack_cli import main as cli
from tracker_core.detector import read_meta
from tracker_core.detector.weights_io import load_weights

REPO = Path(__file__).resolve().parents[2]

RUNNER = """
import importlib.util, json, sys
print(json.dumps({"models_spec": str(importlib.util.find_spec("models"))}), flush=True)
from roitrack_cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"models_imported": sorted(m for m in sys.modules if m == "models" or m.startswith("models."))}))
sys.exit(rc)
"""


def _clean_env(tmp_path: Path, extra_path: Path | None = None) -> dict[str, str]:
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _run(args: list[str], tmp_path: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=tmp_path,
        env=_clean_env(tmp_path, extra_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("arch", ["yolov7-tiny", "yolov7"])
def test_converts_shared_checkpoint_without_models_module(tmp_path, yolov7_reference, arch):
    manifest = json.loads((yolov7_reference / "manifest.json").read_text())["arches"][arch]
    src = yolov7_reference / manifest["checkpoint"]
    dst = tmp_path / "out" / f"{arch}.safetensors"
    dst.parent.mkdir()
    proc = _run(["convert-weights", str(src), str(dst), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0] == {"models_spec": "None"}
    assert lines[-1] == {"models_imported": []}
    printed = lines[1]
    assert printed["arch"] == arch and printed["nc"] == 80
    assert printed["source_sha256"] == manifest["checkpoint_sha256"]
    meta = read_meta(dst)
    assert meta.arch == arch and meta.strides == [8, 16, 32] and len(meta.names) == 80
    state, _ = load_weights(dst)
    assert {k: list(v.shape) for k, v in state.items()} == manifest["state_dict_keys"]
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]  # no temp file left


def test_a_poisoned_models_package_is_never_imported(tmp_path, yolov7_reference):
    """Even with an importable ``models`` package on the path, conversion never touches it."""
    poison = tmp_path / "poison"
    (poison / "models").mkdir(parents=True)
    marker = tmp_path / "models-was-imported"
    (poison / "models" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (poison / "models" / "yolo.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    dst = tmp_path / "tiny.safetensors"
    src = yolov7_reference / "yolov7-tiny-random-official-format.pt"
    proc = _run(["convert-weights", str(src), str(dst)], tmp_path, extra_path=poison)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["models_spec"] != "None"  # it was importable
    assert not marker.exists()
    assert read_meta(dst).arch == "yolov7-tiny"


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    cmd = f"touch {marker}".encode()
    data = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", data)
    return path


def test_cli_rejects_forbidden_global_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    src = _evil_checkpoint(tmp_path / "evil.pt", marker)
    dst = tmp_path / "out.safetensors"
    assert cli.main(["convert-weights", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "roitrack convert-weights: error:" in err and "os.system" in err
    assert not marker.exists() and not dst.exists()


@pytest.mark.parametrize("kind", ["truncated", "foreign", "missing", "directory"])
def test_cli_bad_inputs_exit_2_without_output(tmp_path, capsys, yolov7_reference, kind):
    src = tmp_path / "in.pt"
    if kind == "truncated":
        raw = (yolov7_reference / "yolov7-tiny-random-official-format.pt").read_bytes()
        src.write_bytes(raw[: len(raw) // 3])
    elif kind == "foreign":
        src.write_bytes(b"GIF89a" + bytes(range(256)) * 4)
    elif kind == "directory":
        src.mkdir()
    dst = tmp_path / "out.safetensors"
    assert cli.main(["convert-weights", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roitrack convert-weights: error:") and "Traceback" not in err
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
