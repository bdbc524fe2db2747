"""ROI Align + encoder run over bounded groups of boxes (a frame's boxes split too): grouping and equality with
one call."""

from __future__ import annotations

import numpy as np
import pytest

from server.model_runner import _box_chunks


@pytest.mark.parametrize(
    ("counts", "limit", "groups"),
    [
        ([], 64, []),
        ([10, 20, 30], None, [[(0, 0, 10), (1, 0, 20), (2, 0, 30)]]),
        ([50, 50], 64, [[(0, 0, 50), (1, 0, 14)], [(1, 14, 50)]]),
        ([20, 20, 24], 64, [[(0, 0, 20), (1, 0, 20), (2, 0, 24)]]),
        ([150, 1], 64, [[(0, 0, 64)], [(0, 64, 128)], [(0, 128, 150), (1, 0, 1)]]),  # one frame split
        ([0, 0, 70, 0], 64, [[(2, 0, 64)], [(2, 64, 70)]]),
    ],
)
def test_box_chunks(counts, limit, groups):
    got = _box_chunks(counts, limit)
    assert got == groups
    if limit is not None:
        assert all(sum(hi - lo for _, lo, hi in g) <= limit for g in got)
    # every box exactly once, in order
    flat = [(j, k) for g in got for j, lo, hi in g for k in range(lo, hi)]
    assert flat == [(j, k) for j, c in enumerate(counts) for k in range(c)]


def test_chunked_embeddings_equal_one_call():
    """The same batch through the runner with and without chunking gives the same embeddings per frame."""
    from server.frames import ClientDetections, DecodedImage, FrameInput
    from server.loading import random_appearance
    from server.model_runner import ModelRunner
    from tracker_core.detector import build_detector

    det = build_detector("yolov7-tiny", fuse=True, seed=0)
    app = random_appearance(det)
    rng = np.random.default_rng(0)
    inputs = []
    for n in (30, 45, 3, 0, 50, 150):
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2)).astype(np.float32)], 1)
        cd = ClientDetections(boxes, np.full(n, 0.9, np.float32), np.zeros(n, np.int64))
        inputs.append(FrameInput(DecodedImage(img), cd))
    runner = ModelRunner(det, app, input_size=160)
    assert runner.roi_chunk == 64
    chunked = runner.run(inputs)
    runner.roi_chunk = None
    whole = runner.run(inputs)
    for a, b in zip(chunked, whole, strict=True):
        assert a.error is None and a.embeddings is not None and b.embeddings is not None
        assert a.embeddings.shape == b.embeddings.shape
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
