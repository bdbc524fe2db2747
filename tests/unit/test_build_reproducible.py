"""Issue 19 (5, 6): the gRPC drift check can fail, installs are reproducible.

- ``make install`` regenerated ``roitrack_api/`` from ``proto/`` before ``make lint`` ran ``gen_proto.py --check``,
  so the check compared fresh code with itself and could never fail in CI; and with an unpinned grpcio-tools it
  rewrote the committed code (``GRPC_GENERATED_VERSION``), leaving a dirty tree after the README's first command.
  Now only ``make proto`` regenerates, and the check reads the committed tree.
- ``requirements/lock.txt`` pins every package ``make install`` puts into the venv; ``scripts/check_lock.py``
  checks an environment against it and that pyproject's requirements all have a line in it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
_spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
assert _spec is not None and _spec.loader is not None
check_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_lock)


def _copy_tree(tmp: Path) -> Path:
    """proto/, roitrack_api/ and the generator, as committed, in a scratch tree (the script works from its root)."""
    (tmp / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gen_proto.py", tmp / "scripts" / "gen_proto.py")
    shutil.copytree(ROOT / "proto", tmp / "proto")
    shutil.copytree(ROOT / "roitrack_api", tmp / "roitrack_api", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def _check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tree / "scripts" / "gen_proto.py"), "--check"], capture_output=True, text=True
    )


def test_the_committed_generated_code_matches_proto() -> None:
    r = _check(ROOT)
    assert r.returncode == 0, r.stderr


def test_the_drift_check_fails_on_a_proto_edit_without_make_proto(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    assert _check(tree).returncode == 0
    proto = tree / "proto" / "roitrack" / "v1" / "tracking.proto"
    proto.write_text(
        proto.read_text().replace(
            "message ListStreamsRequest {}", "message ListStreamsRequest {\n  bool all = 1;\n}"
        )
    )
    r = _check(tree)
    assert r.returncode == 1 and "out of date; run `make proto`" in r.stderr, r.stderr
    assert "tracking_pb2.py" in r.stderr


def test_the_drift_check_fails_on_a_stale_or_edited_generated_file(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    gen = tree / "roitrack_api" / "roitrack" / "v1" / "tracking_pb2_grpc.py"
    text = gen.read_text()
    assert "GRPC_GENERATED_VERSION = '" in text
    # what an unpinned grpcio-tools did to the committed code on a fresh machine
    gen.write_text(text.replace("GRPC_GENERATED_VERSION = '", "GRPC_GENERATED_VERSION = '9.", 1))
    r = _check(tree)
    assert r.returncode == 1 and "tracking_pb2_grpc.py" in r.stderr, r.stderr
    gen.write_text(text)
    (tree / "roitrack_api" / "roitrack" / "v1" / "stray_pb2.py").write_text("# left behind\n")
    assert _check(tree).returncode == 1


def test_make_install_never_regenerates_the_committed_code() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    plan = subprocess.run([make, "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "gen_proto.py" not in plan.stdout, plan.stdout
    assert "-c requirements/lock.txt" in plan.stdout and "check_lock.py requirements/lock.txt" in plan.stdout
    lint = subprocess.run([make, "-n", "lint"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "gen_proto.py --check" in lint.stdout


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    """`make install` installed this venv with the lock as constraints; every pin holds and pyproject's
    requirements (dependencies, dev and bench extras, the no-deps peers) each have a line."""
    problems = check_lock.check(LOCK, ROOT / "pyproject.toml")
    assert not problems, problems


def test_the_lock_check_names_what_differs(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    assert check_lock.write(lock) == 0
    pins = check_lock.read_lock(lock)
    assert pins["numpy"] and "roitrack" not in pins and "pip" not in pins
    assert check_lock.check(lock, ROOT / "pyproject.toml") == []
    # a wrong version, a package that is not installed, a requirement without a line
    text = lock.read_text().replace(f"numpy=={pins['numpy']}", "numpy==0.0.1")
    lock.write_text(text + "not-installed-anywhere==1.0\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        (ROOT / "pyproject.toml")
        .read_text()
        .replace("dependencies = [\n", 'dependencies = [\n    "brand-new-dep>=1",\n', 1)
    )
    problems = check_lock.check(lock, pyproject)
    assert any("numpy" in p and "0.0.1" in p for p in problems), problems
    assert any(p.startswith("not-installed-anywhere==1.0 is locked but not installed") for p in problems)
    assert any(
        p.startswith("brand-new-dep (pyproject.toml) has no line") and "make lock" in p for p in problems
    )
