"""eval-mot's embeddings files: round trip, matching against the detections, and no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import FrameDetections
from tracker_core.evaluation.embedding_file import FORMAT, check_matches, load_embeddings, save_embeddings


def _frames(counts=(3, 0, 2)) -> tuple[list[FrameDetections], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    frames, emb = [], []
    for n in counts:
        xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        frames.append(FrameDetections(np.c_[xy, xy + 20].astype(np.float32), np.ones(n, np.float32)))
        e = rng.standard_normal((n, 6)).astype(np.float32)
        emb.append(e / np.linalg.norm(e, axis=1, keepdims=True) if n else e)
    return frames, emb


def test_round_trip_per_frame(tmp_path: Path):
    frames, emb = _frames()
    meta = {"kind": "reid", "model": "m.onnx", "model_sha256": "ab" * 32, "detections": "det.txt"}
    save_embeddings(tmp_path / "e.npz", frames, emb, meta)
    ef = load_embeddings(tmp_path / "e.npz")
    assert ef.dim == 6 and [len(e) for e in ef.embeddings] == [3, 0, 2]
    for a, b in zip(ef.embeddings, emb, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ef.meta["kind"] == "reid" and ef.meta["model_sha256"] == "ab" * 32
    check_matches(ef, frames, "e.npz", "det.txt")  # the same detections: accepted


def test_mismatching_detections_are_refused(tmp_path: Path):
    frames, emb = _frames()
    save_embeddings(tmp_path / "e.npz", frames, emb, {"detections": "det.txt"})
    ef = load_embeddings(tmp_path / "e.npz")
    with pytest.raises(InvalidInputError, match=r"hold 3 frames, but other\.txt has 2"):
        check_matches(ef, frames[:2], "e.npz", "other.txt")
    moved = [frames[0], frames[1], FrameDetections(frames[2].boxes + 1, frames[2].scores)]
    with pytest.raises(InvalidInputError, match="frame 3"):
        check_matches(ef, moved, "e.npz", "other.txt")
    fewer = [frames[0], frames[1], FrameDetections(frames[2].boxes[:1], frames[2].scores[:1])]
    with pytest.raises(InvalidInputError, match=r"computed for det\.txt"):
        check_matches(ef, fewer, "e.npz", "other.txt")
    with pytest.raises(InvalidInputError, match="2 boxes but 1 embeddings"):
        save_embeddings(tmp_path / "x.npz", frames, [emb[0], emb[1], emb[2][:1]], {})


def test_files_that_are_not_ours_or_need_pickle_are_refused(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_embeddings(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match="not a readable"):
        load_embeddings(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InvalidInputError, match="not a roitrack embeddings file"):
        load_embeddings(tmp_path / "other.npz")
    # an object array can only be read by unpickling: refused, never unpickled
    evil = np.empty(1, dtype=object)
    evil[0] = {"x": 1}
    np.savez(tmp_path / "evil.npz", format=np.array(FORMAT), embeddings=evil, boxes=evil, counts=evil)
    with pytest.raises(InvalidInputError, match="not a readable"):
        load_embeddings(tmp_path / "evil.npz")
    frames, emb = _frames()
    save_embeddings(tmp_path / "e.npz", frames, emb, {})
    with np.load(tmp_path / "e.npz") as z:
        data = dict(z)
    data["counts"] = np.array([3, 0, 5])
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(InvalidInputError, match="inconsistent"):
        load_embeddings(tmp_path / "bad.npz")
