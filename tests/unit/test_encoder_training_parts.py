"""Training building blocks: exact-once sharding, InfoNCE, LR schedule, box jitter, config validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tracker_core.errors import ConfigError
from training.encoder.batches import jitter_boxes
from training.encoder.config import TrainConfig, input_size_for
from training.encoder.loss import info_nce
from training.sampler import ShardedSampler
from training.schedule import lr_at


@pytest.mark.parametrize("n", [1, 7, 16, 101])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_sharded_sampler_each_sample_exactly_once(n, world):
    for epoch in (0, 1):
        shards = []
        for r in range(world):
            s = ShardedSampler(n, r, world, shuffle=True, seed=5)
            s.set_epoch(epoch)
            shards.append(s.indices())
            assert len(s) == len(shards[-1])
        flat = [i for sh in shards for i in sh]
        assert sorted(flat) == list(range(n))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    a, b = ShardedSampler(n, 0, 1, seed=5), ShardedSampler(n, 0, 1, seed=5)
    b.set_epoch(1)
    if n > 3:
        assert a.indices() != b.indices()  # reshuffled every epoch


def test_info_nce_prefers_aligned_positives():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    good = F.normalize(torch.eye(3).repeat(2, 1) + 0.01 * torch.randn(6, 3), dim=1)
    bad = F.normalize(
        torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]]), dim=1
    )
    assert info_nce(good, labels) < 0.1 < info_nce(bad, labels)
    # by hand for 3 rows: anchor 0 with positive 1, negative 2
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=1)
    got = info_nce(z, torch.tensor([7, 7, 9]), temperature=1.0)
    sim = z @ z.T

    def row(i, p):
        others = [j for j in range(3) if j != i]
        return -(sim[i, p] - torch.logsumexp(sim[i, others], 0))

    torch.testing.assert_close(got, (row(0, 1) + row(1, 0)) / 2)  # row 2 has no positive: skipped


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 100, 1.0, warmup_frac=0.1, min_frac=0.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[-1] < 0.01


def test_jitter_boxes_stay_valid_and_change():
    rng = np.random.default_rng(0)
    b = np.array([[10, 10, 40, 90], [0, 0, 5, 5], [600, 400, 640, 480]], np.float32)
    j = jitter_boxes(b, 0.1, rng, 640, 480)
    assert j.shape == b.shape and not np.allclose(j, b)
    assert (j[:, 2] > j[:, 0]).all() and (j[:, 3] > j[:, 1]).all()
    assert (j[:, [0, 2]] >= 0).all() and (j[:, [0, 2]] <= 641).all() and (j[:, [1, 3]] <= 481).all()
    np.testing.assert_array_equal(jitter_boxes(b, 0.0, rng, 640, 480), b)


def test_config_and_input_size():
    assert input_size_for(576, 768) == (480, 640)
    assert input_size_for(576, 768, rect=False) == (640, 640)
    assert input_size_for(1080, 1920) == (384, 640)
    with pytest.raises(ConfigError):
        TrainConfig(features="spp+s8+s16")
    with pytest.raises(ConfigError):
        TrainConfig(input_size=100)
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"epochs": 3, "bogus": 1})
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
