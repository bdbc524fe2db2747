"""The exported-model cache: backend artifacts on disk, keyed by a hash of everything that makes them.

An entry is a manifest ``<key>.json`` (``key`` = sha256 of the canonical JSON of its fields: weights hash, input
shape, taps, precision, backend and its version, torch version, export version) naming its files, each stored
under its own content hash (``<sha256>.onnx``, ``.xml``, ``.bin``). Nothing here is a pickle: ONNX and OpenVINO IR
are protobuf / XML + raw weights that the runtimes parse without running code.

* Written atomically: files are built in a private temporary folder inside the cache, renamed into place, and the
  manifest is written last (temporary file + rename), so a reader sees a whole entry or none.
* Checked on every read: a manifest that does not parse, names other fields, a file name that is not a plain
  content hash, a missing file, a symlink, or a file whose size or sha256 differs, and the entry is rebuilt.
* Private: the folder is created ``0700``; one not owned by this user, or writable by others, is not used (a
  private temporary folder is, with a warning).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tracker_core.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT = "roitrack-inference-cache"
VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
_FILE_RE = re.compile(r"^[0-9a-f]{64}\.(onnx|xml|bin)$")


def default_cache_dir() -> Path:
    env = os.environ.get("ROITRACK_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "roitrack" / "inference"


def entry_key(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``fields``."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CacheCorrupt(Exception):
    """An entry that must be rebuilt (the message says why)."""


class ExportCache:
    """``get_or_build(fields, build)`` -> ``{role: path}`` of a verified entry, building it when absent or bad."""

    def __init__(self, root: str | Path | None = None) -> None:
        wanted = Path(root) if root is not None else default_cache_dir()
        self.root = self._private_dir(wanted)

    @staticmethod
    def _private_dir(path: Path) -> Path:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = path.lstat()
            problem = None
            if not stat.S_ISDIR(st.st_mode):
                problem = "is not a directory (or is a symlink)"
            elif st.st_uid != os.geteuid():
                problem = "belongs to another user"
            elif st.st_mode & 0o022:
                problem = "is writable by other users"
            else:
                probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True)  # noqa: SIM115
                probe.close()
        except OSError as exc:
            problem = f"cannot be used ({exc.strerror or exc})"
        if problem is None:
            return path
        try:
            tmp = Path(tempfile.mkdtemp(prefix="roitrack-inference-cache-"))
        except OSError as exc:
            raise ConfigError(
                f"export cache {path} {problem}, and no private temporary folder could be made ({exc}): "
                "give a writable folder with --inference-cache (or $ROITRACK_CACHE_DIR)"
            ) from None
        atexit.register(shutil.rmtree, str(tmp), True)
        log.warning("export cache %s %s: using %s for this process only", path, problem, tmp)
        return tmp

    def manifest_path(self, fields: Mapping[str, Any]) -> Path:
        return self.root / f"{entry_key(fields)}.json"

    def load(self, fields: Mapping[str, Any]) -> dict[str, Path]:
        """The verified files of the entry for ``fields``; ``CacheCorrupt`` (missing counts too) otherwise."""
        mpath = self.manifest_path(fields)
        try:
            st = mpath.lstat()
        except FileNotFoundError:
            raise CacheCorrupt("absent") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            raise CacheCorrupt("manifest is not a regular file of sane size")
        try:
            doc = json.loads(mpath.read_bytes())
        except (ValueError, RecursionError, OSError) as exc:
            raise CacheCorrupt(f"manifest unreadable: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise CacheCorrupt("manifest of another format or version")
        if doc.get("fields") != json.loads(json.dumps(dict(fields))):
            raise CacheCorrupt("manifest describes another model")
        files = doc.get("files")
        if not isinstance(files, dict) or not files:
            raise CacheCorrupt("manifest names no files")
        out = {}
        for role, f in files.items():
            if not isinstance(f, dict):
                raise CacheCorrupt(f"{role}: bad file record")
            name, digest, size = f.get("file"), f.get("sha256"), f.get("size")
            if not isinstance(name, str) or not _FILE_RE.match(name) or name.split(".")[0] != digest:
                raise CacheCorrupt(f"{role}: file name {name!r} is not its content hash")
            path = self.root / name
            try:
                fst = path.lstat()
            except FileNotFoundError:
                raise CacheCorrupt(f"{role}: {name} is missing") from None
            if not stat.S_ISREG(fst.st_mode):
                raise CacheCorrupt(f"{role}: {name} is not a regular file")
            if fst.st_size != size:
                raise CacheCorrupt(f"{role}: {name} has {fst.st_size} bytes, the manifest says {size}")
            if file_sha256(path) != digest:
                raise CacheCorrupt(f"{role}: {name} does not match its sha256")
            out[str(role)] = path
        return out

    def store(self, fields: Mapping[str, Any], produced: Mapping[str, Path]) -> dict[str, Path]:
        """Move the ``produced`` files (role -> path, same file system) into the cache under their content hashes
        and write the manifest last; returns the cached paths."""
        files: dict[str, dict[str, Any]] = {}
        out: dict[str, Path] = {}
        for role, src in produced.items():
            digest = file_sha256(src)
            suffix = src.suffix.lower()
            name = f"{digest}{suffix}"
            if not _FILE_RE.match(name):
                raise ValueError(f"cannot cache a {suffix} file")
            final = self.root / name
            size = src.stat().st_size
            os.chmod(src, 0o600)
            os.replace(src, final)  # atomic; an identical file already there is simply replaced
            files[str(role)] = {"file": name, "sha256": digest, "size": size}
            out[str(role)] = final
        doc = {"format": FORMAT, "version": VERSION, "fields": dict(fields), "files": files}
        mpath = self.manifest_path(fields)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, sort_keys=True, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, mpath)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return out

    def get_or_build(
        self, fields: Mapping[str, Any], build: Callable[[Path], Mapping[str, Path]]
    ) -> tuple[dict[str, Path], bool]:
        """``({role: path}, hit)``. On a miss or a bad entry, ``build(tmpdir)`` writes the files into ``tmpdir``
        (inside the cache) and returns them by role; they are then stored."""
        try:
            return self.load(fields), True
        except CacheCorrupt as exc:
            if str(exc) != "absent":
                log.warning(
                    "export cache entry %s is unusable (%s): rebuilding it", entry_key(fields)[:12], exc
                )
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".build-") as tmp:
            produced = build(Path(tmp))
            return self.store(fields, produced), False
