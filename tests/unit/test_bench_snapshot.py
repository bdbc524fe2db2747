"""The snapshot benchmark measures the state it claims: N confirmed tracks, full embedding banks, a full gallery."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.snapshot import EMBED_DIM, rich_tracker
from tracker_core.tracking import snapshot


@pytest.mark.parametrize("n", [10, 100])
def test_rich_tracker_holds_n_tracks_with_full_banks_and_gallery(n: int) -> None:
    tracker, follow, _ = rich_tracker(n)
    tr = tracker._tracks
    assert tracker.num_tracks == n and (tr.track_id > 0).all()
    assert tr.embed_dim == EMBED_DIM and tr.bank_valid.all() and tr.emb_valid.all()
    assert tracker.gallery_size == tracker.config.gallery_size
    assert len(follow) == 20 and follow[0][0].shape == (n, 4)
    size = len(snapshot.encode(tracker))
    # every per-track array (embedding memory, bank, last / alternative embeddings, Kalman state, ...) is carried
    per_track = sum(getattr(tr, name).nbytes for name in tr._ROW_FIELDS) // n
    gallery = sum(v.nbytes for v in vars(tracker._gallery).values() if isinstance(v, np.ndarray))
    assert per_track * n < size < per_track * n + gallery + 64 * 1024
