"""Tracker snapshots: a restored tracker continues exactly like the original; bad snapshots are refused whole."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from tests.unit.test_tracking_tracker import synthetic_stream
from tracker_core.errors import SnapshotError
from tracker_core.tracking import DEFAULT_CONFIG, Tracker
from tracker_core.tracking import snapshot as snap

CONFIG = DEFAULT_CONFIG.replace(output_lost=True)


def _feed(tracker: Tracker, frames: list) -> list:
    out = []
    for t, boxes, scores, _ids, emb in frames:
        res = tracker.update(boxes, scores, t, embeddings=emb)
        out.append(
            [(o.track_id, o.box.tolist(), o.score, o.class_id, o.state, o.det_index, o.age_s) for o in res]
        )
    return out


def _resign(blob: bytes, header: dict) -> bytes:
    """Rebuild a snapshot with a changed header and a valid checksum (what a foreign writer could send)."""
    _, version, hlen = struct.unpack_from("<6sHI", blob, 0)
    body = blob[struct.calcsize("<6sHI") + hlen : -32]
    hdr = json.dumps(header).encode()
    out = struct.pack("<6sHI", b"RTSNAP", version, len(hdr)) + hdr + body
    return out + hashlib.sha256(out).digest()


@pytest.mark.parametrize("cut_s", [1.0, 15.0, 24.0])
def test_restored_tracker_continues_exactly(cut_s: float) -> None:
    frames = synthetic_stream(seed=3)
    k = next(i for i, f in enumerate(frames) if f[0] >= cut_s)
    original = Tracker(CONFIG)
    _feed(original, frames[:k])
    if cut_s == 15.0:  # D left at 8 s: it is in the gallery now; the state is rich
        assert original.gallery_size >= 1
        assert original._tracks.embed_dim == 64 and original._tracks.emb_valid.any()
    blob = snap.encode(original, extra={"stream_id": "cam-1"})
    restored, extra = snap.decode(blob)
    assert extra == {"stream_id": "cam-1"}
    assert restored is not original and restored.next_id == original.next_id
    assert restored.frame_count == original.frame_count and restored.config == original.config
    a, b = _feed(original, frames[k:]), _feed(restored, frames[k:])
    assert a == b
    assert any(o[4] == "lost" for frame in a for o in frame)  # lost tracks were carried and output
    assert sum(len(x) for x in a) > 100


def test_snapshot_carries_fields_added_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new array on the table and a new scalar on the tracker travel without any edit of the snapshot code."""
    reset = Tracker.reset

    def reset_with_more(self: Tracker) -> None:
        reset(self)
        self._tracks.new_row_flag = np.zeros(0, np.int8)  # type: ignore[attr-defined]
        self.new_clock = 0.0  # type: ignore[attr-defined]

    monkeypatch.setattr(Tracker, "reset", reset_with_more)
    t = Tracker(CONFIG)
    t._tracks.new_row_flag = np.array([1, 2, 3], np.int8)  # type: ignore[attr-defined]
    t.new_clock = 12.5  # type: ignore[attr-defined]
    back, _ = snap.decode(snap.encode(t))
    assert back._tracks.new_row_flag.tolist() == [1, 2, 3]  # type: ignore[attr-defined]
    assert back.new_clock == 12.5  # type: ignore[attr-defined]
    # ... and a snapshot written before the field existed is refused as incompatible, not half loaded
    monkeypatch.setattr(Tracker, "reset", reset)
    old = snap.encode(Tracker(CONFIG))
    monkeypatch.setattr(Tracker, "reset", reset_with_more)
    with pytest.raises(SnapshotError, match="schema does not match"):
        snap.decode(old)


def test_unsupported_attribute_type_is_refused_at_encode() -> None:
    t = Tracker(CONFIG)
    t.some_object = object()  # type: ignore[attr-defined]
    with pytest.raises(SnapshotError, match=r"cannot snapshot tracker\.some_object"):
        snap.encode(t)


def _rich_blob() -> bytes:
    t = Tracker(CONFIG)
    frames = synthetic_stream(seed=1, duration=5.0)
    _feed(t, frames)
    return snap.encode(t)


def test_corrupt_truncated_and_foreign_snapshots_are_refused() -> None:
    blob = _rich_blob()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    with pytest.raises(SnapshotError, match="checksum"):
        snap.decode(bytes(flipped))
    with pytest.raises(SnapshotError):
        snap.decode(blob[:-10])
    with pytest.raises(SnapshotError, match="bad magic"):
        snap.decode(b"\x80\x04\x95" + b"pickle-ish" * 10)
    with pytest.raises(SnapshotError, match="bad magic"):
        snap.decode(b"")
    with pytest.raises(SnapshotError, match="exceeds the limit"):
        snap.decode(blob, max_bytes=100)
    with pytest.raises(SnapshotError, match="exceeds the limit"):
        snap.encode(Tracker(CONFIG), max_bytes=100)


def test_incompatible_version_and_schema_are_refused() -> None:
    blob = _rich_blob()
    header, _ = snap.read_header(blob)
    v2 = bytearray(blob)
    struct.pack_into("<H", v2, 6, snap.FORMAT_VERSION + 1)
    v2 = v2[:-32] + hashlib.sha256(bytes(v2[:-32])).digest()
    with pytest.raises(SnapshotError, match="format version 2 is not supported"):
        snap.decode(bytes(v2))
    foreign = dict(header, kind="someone.else")
    with pytest.raises(SnapshotError, match="foreign"):
        snap.decode(_resign(blob, foreign))
    fewer = dict(header, schema=[x for x in header["schema"] if x[1] != "bank"])
    with pytest.raises(SnapshotError, match="schema does not match"):
        snap.decode(_resign(blob, fewer))
    bad_cfg = dict(header, config={**header["config"], "no_such_option": 1})
    with pytest.raises(SnapshotError, match="incompatible tracker config"):
        snap.decode(_resign(blob, bad_cfg))
    arrays = [
        dict(a, shape=[a["shape"][0] + 1, *a["shape"][1:]]) if a["name"] == "mean" else a
        for a in header["arrays"]
    ]
    with pytest.raises(SnapshotError):
        snap.decode(_resign(blob, dict(header, arrays=arrays)))
    wrong_dtype = [dict(a, dtype="<f4") if a["name"] == "mean" else a for a in header["arrays"]]
    with pytest.raises(SnapshotError, match="does not match"):
        snap.decode(_resign(blob, dict(header, arrays=wrong_dtype)))
    obj = [dict(a, dtype="|O") if a["name"] == "mean" else a for a in header["arrays"]]
    with pytest.raises(SnapshotError):
        snap.decode(_resign(blob, dict(header, arrays=obj)))


def test_snapshot_is_compact() -> None:
    """Size is the arrays plus a small header: 64-d embeddings with a bank of 8 dominate."""
    blob = _rich_blob()
    _header, body = snap.read_header(blob)
    assert len(blob) - len(body) < 8192
    t = Tracker(CONFIG)
    # an empty tracker: the header plus the stream's appearance calibration (two distance histograms of
    # CALIBRATION_BINS float64 each, issue 21), which a restored stream needs to keep its scale
    from tracker_core.tracking.costs import CALIBRATION_BINS

    assert len(snap.encode(t)) < 8192 + 2 * 8 * CALIBRATION_BINS
