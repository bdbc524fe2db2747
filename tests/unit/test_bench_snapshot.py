"""The snapshot benchmark measures the state it claims: N confirmed tracks, full embedding banks, a full gallery."""

from __future__ import annotations

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
    per_track = tr.bank.nbytes // n + tr.emb.nbytes // n
    assert per_track * n < size < per_track * n + tracker._gallery.emb.nbytes + 64 * 1024
