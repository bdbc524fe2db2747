"""The exported-model cache: content-addressed files, atomic entries, verified reads, rebuilt when corrupt,
never a folder other users can write."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from tracker_core.inference.cache import ExportCache, entry_key

FIELDS = {"graph": "detector", "weights_sha256": "ab" * 32, "input_shape": [160, 160], "precision": "bf16"}


class Builder:
    """A build function that writes two files and counts its calls."""

    def __init__(self, payload: bytes = b"model-bytes") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, tmp: Path) -> dict[str, Path]:
        self.calls += 1
        (tmp / "model.xml").write_bytes(b"<net>" + self.payload + b"</net>")
        (tmp / "model.bin").write_bytes(self.payload * 100)
        return {"xml": tmp / "model.xml", "bin": tmp / "model.bin"}


def test_entry_is_built_once_then_read_back_verified(tmp_path: Path):
    cache = ExportCache(tmp_path / "c")
    build = Builder()
    files, hit = cache.get_or_build(FIELDS, build)
    assert not hit and build.calls == 1
    files2, hit2 = cache.get_or_build(FIELDS, build)
    assert hit2 and build.calls == 1 and files2 == files
    # files are named by their content hash; the manifest names them and the fields
    for path in files.values():
        assert path.parent == cache.root and path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
    doc = json.loads(cache.manifest_path(FIELDS).read_text())
    assert doc["fields"] == FIELDS and set(doc["files"]) == {"xml", "bin"}
    # the folder is private and no temporary build folders are left behind
    assert (cache.root.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in cache.root.iterdir() if p.name.startswith(".")) == []


def test_other_fields_are_another_entry(tmp_path: Path):
    cache = ExportCache(tmp_path)
    build = Builder()
    cache.get_or_build(FIELDS, build)
    other = {**FIELDS, "precision": "fp32"}
    assert entry_key(other) != entry_key(FIELDS)
    _, hit = cache.get_or_build(other, build)
    assert not hit and build.calls == 2


@pytest.mark.parametrize(
    "damage",
    ["flip_byte", "truncate", "delete_file", "symlink_file", "bad_json", "foreign_fields", "traversal_name"],
)
def test_a_damaged_entry_is_rebuilt(tmp_path: Path, damage: str, caplog):
    cache = ExportCache(tmp_path / "c")
    build = Builder()
    files, _ = cache.get_or_build(FIELDS, build)
    mpath = cache.manifest_path(FIELDS)
    doc = json.loads(mpath.read_text())
    target = files["bin"]
    if damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[5] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:10])
    elif damage == "delete_file":
        target.unlink()
    elif damage == "symlink_file":
        outside = tmp_path / "outside.bin"
        outside.write_bytes(target.read_bytes())
        target.unlink()
        target.symlink_to(outside)
    elif damage == "bad_json":
        mpath.write_text("{not json")
    elif damage == "foreign_fields":
        doc["fields"] = {**FIELDS, "weights_sha256": "cd" * 32}
        mpath.write_text(json.dumps(doc))
    elif damage == "traversal_name":
        (tmp_path / "evil.bin").write_bytes(b"x")
        doc["files"]["bin"]["file"] = "../evil.bin"
        mpath.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="tracker_core.inference.cache"):
        files2, hit = cache.get_or_build(FIELDS, build)
    assert not hit and build.calls == 2
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    # the rebuilt entry is whole again and verifies
    assert cache.load(FIELDS) == files2
    assert files2["bin"].read_bytes() == b"model-bytes" * 100 and not files2["bin"].is_symlink()


def test_a_failed_build_leaves_no_entry(tmp_path: Path):
    cache = ExportCache(tmp_path / "c")

    def broken(tmp: Path) -> dict[str, Path]:
        (tmp / "model.onnx").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        cache.get_or_build(FIELDS, broken)
    assert list(cache.root.iterdir()) == []
    files, hit = cache.get_or_build(FIELDS, Builder())
    assert not hit and files["xml"].is_file()


@pytest.mark.parametrize("problem", ["world_writable", "symlink_dir", "a_file"])
def test_an_unsafe_cache_folder_is_not_used(tmp_path: Path, problem: str, caplog):
    wanted = tmp_path / "shared-cache"
    if problem == "world_writable":
        wanted.mkdir()
        os.chmod(wanted, 0o777)
    elif problem == "symlink_dir":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        wanted.symlink_to(real)
    else:
        wanted.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="tracker_core.inference.cache"):
        cache = ExportCache(wanted)
    assert cache.root != wanted and "this process only" in caplog.text
    assert (cache.root.stat().st_mode & 0o777) == 0o700
    files, _ = cache.get_or_build(FIELDS, Builder())
    assert files["xml"].parent == cache.root
    if problem == "world_writable":
        assert list(wanted.iterdir()) == []


def test_default_folder_follows_the_environment(tmp_path: Path, monkeypatch):
    from tracker_core.inference.cache import default_cache_dir

    monkeypatch.setenv("ROITRACK_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("ROITRACK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "roitrack" / "inference"


def test_no_writable_folder_at_all_is_a_clear_config_error(tmp_path: Path, monkeypatch):
    import tempfile

    from tracker_core.errors import ConfigError

    wanted = tmp_path / "ro"
    wanted.write_text("a file, not a folder")

    def no_tmp(*a, **k):
        raise PermissionError(13, "read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", no_tmp)
    with pytest.raises(ConfigError, match="--inference-cache"):
        ExportCache(wanted)
