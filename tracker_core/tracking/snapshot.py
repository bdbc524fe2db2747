"""Versioned, checksummed, pickle-free snapshots of a :class:`Tracker` (durable stream state).

A snapshot carries *everything* a tracker needs to continue: the track table (Kalman state, embedding memory
and bank, IDs, clocks), the re-identification gallery, the ID counter, the smoothed appearance margin, the
frame counter and the config. It is **generic**: every numpy array and every plain scalar (``int``, ``float``,
``bool``, ``str``, ``None``) attribute of the ``Tracker``, its ``TrackTable`` and its ``Gallery`` is discovered
with ``vars()``, so a field added to any of them is carried without editing this module. An attribute of any
other type is refused at encode time (``SnapshotError``), so nothing is silently dropped.

Container (little endian)::

    b"RTSNAP" | u16 format version | u32 header length | header (UTF-8 JSON) | array bytes | sha256 (32 bytes)

The header names the schema (owner, attribute, kind, dtype, ndim), the config, the scalars, each array's dtype,
shape and offset, and an optional JSON-able ``extra`` mapping (the server's per-stream fields). No pickle:
arrays are raw bytes of an allow-listed dtype. Decoding checks magic, size bound, checksum, version, schema
(the same attributes, kinds, dtypes and ranks a fresh tracker of this code has) and every shape before it builds
a *new* tracker, so a corrupt, foreign or incompatible snapshot raises ``SnapshotError`` and is never half
loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import Any

import numpy as np

from tracker_core.errors import SnapshotError
from tracker_core.tracking.config import TrackerConfig
from tracker_core.tracking.track import TrackTable
from tracker_core.tracking.tracker import Tracker

MAGIC = b"RTSNAP"
FORMAT_VERSION = 1
KIND = "roitrack.tracker"
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
_PREFIX = struct.Struct("<6sHI")
_DIGEST = 32
_DTYPES = frozenset({"|b1", "|i1", "|u1", "<i4", "<i8", "<f4", "<f8"})
# The parts of a tracker a snapshot carries: owner name -> attribute of the Tracker holding it ("" = itself).
_PARTS = {"tracker": "", "tracks": "_tracks", "gallery": "_gallery"}
_SKIP = {"tracker": {"config", "_tracks", "_gallery"}}


def _parts(tracker: Tracker) -> dict[str, Any]:
    return {owner: (tracker if attr == "" else getattr(tracker, attr)) for owner, attr in _PARTS.items()}


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return "array"
    if value is None or isinstance(value, bool | int | float | str):
        return "scalar"
    if isinstance(value, np.generic):
        return "scalar"
    return "other"


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def schema(tracker: Tracker) -> list[list[Any]]:
    """``[owner, attribute, kind, dtype, ndim]`` of every state attribute (sorted); what a snapshot must match."""
    out: list[list[Any]] = []
    for owner, obj in _parts(tracker).items():
        for name, value in sorted(vars(obj).items()):
            if name in _SKIP.get(owner, ()):
                continue
            kind = _kind(value)
            if kind == "other":
                raise SnapshotError(
                    f"cannot snapshot {owner}.{name} of type {type(value).__name__} "
                    "(only numpy arrays and plain scalars are carried)"
                )
            if kind == "array":
                out.append([owner, name, "array", value.dtype.str, int(value.ndim)])
            else:
                out.append([owner, name, "scalar", "", 0])
    return out


def encode(
    tracker: Tracker, extra: dict[str, Any] | None = None, max_bytes: int = MAX_SNAPSHOT_BYTES
) -> bytes:
    """The snapshot of ``tracker`` (plus JSON-able ``extra``) as bytes. Raises ``SnapshotError`` when a state
    attribute has an unsupported type or the snapshot would exceed ``max_bytes``."""
    sch = schema(tracker)
    scalars: dict[str, dict[str, Any]] = {owner: {} for owner in _PARTS}
    arrays: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0
    objs = _parts(tracker)
    for owner, name, kind, _dtype, _ndim in sch:
        value = getattr(objs[owner], name)
        if kind == "scalar":
            scalars[owner][name] = _scalar(value)
            continue
        arr = np.ascontiguousarray(value)
        if arr.dtype.str not in _DTYPES:
            raise SnapshotError(f"cannot snapshot {owner}.{name}: dtype {arr.dtype} is not allowed")
        raw = arr.tobytes()
        arrays.append(
            {"owner": owner, "name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset}
        )
        chunks.append(raw)
        offset += len(raw)
    header = {
        "kind": KIND,
        "version": FORMAT_VERSION,
        "schema": sch,
        "config": dataclasses.asdict(tracker.config),
        "scalars": scalars,
        "arrays": arrays,
        "body_bytes": offset,
        "extra": extra or {},
    }
    try:
        hdr = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot extra fields are not JSON-able: {exc}") from None
    body = b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(hdr)), hdr, *chunks])
    if len(body) + _DIGEST > max_bytes:
        raise SnapshotError(f"snapshot of {len(body) + _DIGEST} bytes exceeds the limit of {max_bytes} bytes")
    return body + hashlib.sha256(body).digest()


def read_header(blob: bytes, max_bytes: int = MAX_SNAPSHOT_BYTES) -> tuple[dict[str, Any], memoryview]:
    """Check size, magic, checksum and version; return the header and the array bytes."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise SnapshotError(f"a snapshot is bytes, got {type(blob).__name__}")
    n = len(blob)
    if n > max_bytes:
        raise SnapshotError(f"snapshot of {n} bytes exceeds the limit of {max_bytes} bytes")
    if n < _PREFIX.size + _DIGEST or bytes(blob[:6]) != MAGIC:
        raise SnapshotError("not a roitrack tracker snapshot (bad magic)")
    view = memoryview(blob)
    if hashlib.sha256(view[: n - _DIGEST]).digest() != bytes(view[n - _DIGEST :]):
        raise SnapshotError("snapshot is corrupt (checksum mismatch)")
    _, version, hlen = _PREFIX.unpack_from(view, 0)
    if version != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format version {version} is not supported by this server (it reads {FORMAT_VERSION})"
        )
    end = _PREFIX.size + hlen
    if end > n - _DIGEST:
        raise SnapshotError("snapshot is corrupt (header length beyond the end)")
    try:
        header = json.loads(bytes(view[_PREFIX.size : end]).decode())
    except (UnicodeDecodeError, ValueError):
        raise SnapshotError("snapshot is corrupt (header is not JSON)") from None
    if not isinstance(header, dict) or header.get("kind") != KIND or header.get("version") != FORMAT_VERSION:
        raise SnapshotError("not a roitrack tracker snapshot (foreign header)")
    return header, view[end : n - _DIGEST]


def decode(blob: bytes, max_bytes: int = MAX_SNAPSHOT_BYTES) -> tuple[Tracker, dict[str, Any]]:
    """A new tracker restored from ``blob``, and the snapshot's ``extra`` mapping.

    Raises ``SnapshotError`` (corrupt, foreign, incompatible version or schema); nothing is half loaded: the
    tracker is built only after every check passed."""
    header, body = read_header(blob, max_bytes)
    try:
        config = TrackerConfig.from_dict(dict(header["config"]))
    except Exception as exc:
        raise SnapshotError(f"snapshot has an incompatible tracker config: {exc}") from None
    fresh = Tracker(config)
    expected = schema(fresh)
    if header.get("schema") != expected:
        got = {tuple(x[:2]) for x in header.get("schema") or [] if isinstance(x, list) and len(x) >= 2}
        want = {tuple(x[:2]) for x in expected}
        detail = ""
        if got != want:
            detail = f" (missing {sorted(want - got)[:5]}, unknown {sorted(got - want)[:5]})"
        raise SnapshotError(f"snapshot schema does not match this server's tracker{detail}")
    scalars = header.get("scalars")
    arrays = header.get("arrays")
    if not isinstance(scalars, dict) or not isinstance(arrays, list) or header.get("body_bytes") != len(body):
        raise SnapshotError("snapshot is corrupt (bad scalars, arrays or body length)")
    values: dict[tuple[str, str], Any] = {}
    want_arrays = {(o, n): (d, nd) for o, n, k, d, nd in expected if k == "array"}
    for spec in arrays:
        try:
            key = (str(spec["owner"]), str(spec["name"]))
            dtype, ndim = want_arrays[key]
            shape = tuple(int(x) for x in spec["shape"])
            offset = int(spec["offset"])
        except (KeyError, TypeError, ValueError):
            raise SnapshotError("snapshot is corrupt (bad array entry)") from None
        if spec.get("dtype") != dtype or len(shape) != ndim or any(x < 0 for x in shape) or key in values:
            raise SnapshotError(f"snapshot array {key[0]}.{key[1]} does not match this server's tracker")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if offset < 0 or offset + size > len(body):
            raise SnapshotError(f"snapshot is corrupt (array {key[0]}.{key[1]} beyond the end)")
        values[key] = np.frombuffer(body[offset : offset + size], dtype=dtype).reshape(shape).copy()
    if set(values) != set(want_arrays):
        raise SnapshotError("snapshot is corrupt (arrays missing)")
    for owner, name, kind, _d, _n in expected:
        if kind != "scalar":
            continue
        part = scalars.get(owner)
        if not isinstance(part, dict) or name not in part:
            raise SnapshotError(f"snapshot is corrupt (scalar {owner}.{name} missing)")
        v = part[name]
        if not (v is None or isinstance(v, bool | int | float | str)):
            raise SnapshotError(f"snapshot is corrupt (scalar {owner}.{name})")
        values[(owner, name)] = v
    _check_rows(values)
    objs = _parts(fresh)
    for (owner, name), v in values.items():
        setattr(objs[owner], name, v)
    extra = header.get("extra")
    return fresh, (extra if isinstance(extra, dict) else {})


def _check_rows(values: dict[tuple[str, str], Any]) -> None:
    """Every per-track array of the table (``TrackTable._ROW_FIELDS``) has the same number of rows."""
    row_fields = set(getattr(TrackTable, "_ROW_FIELDS", ()))
    rows = {v.shape[0] for (o, n), v in values.items() if o == "tracks" and n in row_fields and v.ndim}
    if len(rows) > 1:
        raise SnapshotError(f"snapshot is corrupt (track arrays have different row counts {sorted(rows)})")


__all__ = ["FORMAT_VERSION", "MAX_SNAPSHOT_BYTES", "decode", "encode", "read_header", "schema"]
