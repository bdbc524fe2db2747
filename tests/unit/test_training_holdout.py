"""Held-out split and block-weight calibration, the new augmentations, InfoNCE with a memory queue."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tracker_core.encoder import MixEncoder
from tracker_core.letterbox import letterbox_transform
from training.encoder.batches import AugmentConfig, augment_features
from training.encoder.cache import CachedSource
from training.encoder.config import TrainConfig
from training.encoder.holdout import calibrate_weights, split_source
from training.encoder.loss import info_nce
from training.encoder.val_data import FrameLabels, ValPair
from training.encoder.validate import ValFeatures


def _source(n: int) -> CachedSource:
    t = letterbox_transform((32, 32), (32, 32))
    return CachedSource(
        name="s",
        frame_rate=7.0,
        maps={32: torch.arange(n, dtype=torch.float16).reshape(n, 1, 1, 1)},
        frames=np.arange(1, n + 1),
        transforms=[t] * n,
        boxes=[np.zeros((1, 4), np.float32)] * n,
        scores=[np.ones(1, np.float32)] * n,
    )


def test_split_source_keeps_the_tail_out_of_training():
    train, tail = split_source(_source(10), 0.2)
    assert tail is not None
    assert train.frames.tolist() == list(range(1, 9)) and tail.frames.tolist() == [9, 10]
    assert train.maps[32][:, 0, 0, 0].tolist() == list(range(8)) and len(tail.boxes) == 2
    assert split_source(_source(10), 0.0)[1] is None
    assert split_source(_source(3), 0.2)[1] is None  # too short to hold out anything useful


def test_train_config_validates_new_fields():
    assert TrainConfig().arch == "mix" and TrainConfig().holdout == 0.2
    for bad in (
        {"holdout": 1.0},
        {"arch": "x"},
        {"blocks": "raw+sift"},
        {"features": "spp", "blocks": "color"},
    ):
        with pytest.raises(Exception, match="train config"):
            TrainConfig(**bad)
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def _val_where_color_decides(n_pairs: int = 6) -> ValFeatures:
    """Each object has a distinct colour but the raw features shuffle identities between frames."""
    g = torch.Generator().manual_seed(0)
    colours = torch.eye(3)[[0, 1, 2]]  # red, green, blue objects
    pairs, pre, now = [], [], []
    for k in range(n_pairs):
        feats = []
        for _side in range(2):
            x = torch.zeros(3, 16 + 8 + 12, 10, 10)
            raw = torch.rand(3, 24, generator=g)
            x[:, :24] = raw[:, :, None, None]
            x[:, 24:] = colours.repeat_interleave(4, dim=1)[:, :, None, None] * 0.8
            feats.append(x)
        ids = np.arange(3)
        boxes = np.zeros((3, 4), np.float32)
        fl = FrameLabels(image=__import__("pathlib").Path(""), boxes=boxes, ids=ids)
        pairs.append(ValPair(str(k), fl, fl))
        pre.append(feats[0])
        now.append(feats[1])
    return ValFeatures(pairs, pre, now)


def test_calibration_turns_off_blocks_that_do_not_help():
    m = MixEncoder([(32, 16), (8, 8), (1, 12)], head_dim=16, width=8, hidden=16)
    weights, score = calibrate_weights(m, {10: _val_where_color_decides()})
    assert score == pytest.approx(1.0)
    assert weights == {"color": 1.0, "learned": 0.0, "raw": 0.0}  # the simplest choice that is perfect
    assert m.block_weights()["raw"] == pytest.approx(0.0, abs=1e-6)


def test_augment_features_changes_what_it_should():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 6 + 12, 10, 10, generator=g)
    mean, std = torch.zeros(18), torch.ones(18)
    only_pix = AugmentConfig(jitter=0, noise=0, drop=0, illumination=0.3, blur=1.0, occlusion=0)
    y = augment_features(x, mean, std, only_pix, torch.Generator().manual_seed(1), pixel_channels=12)
    assert torch.equal(y[:, :6], x[:, :6])  # detector channels untouched
    assert not torch.equal(y[:, 6:], x[:, 6:]) and y[:, 6:].min() >= 0 and y[:, 6:].max() <= 1
    occl = AugmentConfig(jitter=0, noise=0, drop=0, occlusion=1.0)
    z = augment_features(x, mean, std, occl, torch.Generator().manual_seed(1), pixel_channels=12)
    changed = (z != x).flatten(1).any(dim=1)
    assert changed.all()  # every ROI got a block of another one
    assert ((z != x).float().mean(dim=(1, 2, 3)) <= 0.41).all()  # at most 40 % of the grid


def test_info_nce_queue_adds_negatives_but_never_same_tracklet():
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    base = info_nce(z, labels)
    hard = z[[0]].clone()
    assert info_nce(z, labels, queue=hard, queue_labels=torch.tensor([5])) > base  # a hard negative
    same = info_nce(z, labels, queue=hard, queue_labels=torch.tensor([0]))
    other = info_nce(z[2:], labels[2:], queue=hard, queue_labels=torch.tensor([0]))
    # the entry is left out for label-0 anchors, a negative for label-1 anchors
    assert same > base and other > info_nce(z[2:], labels[2:])
    torch.testing.assert_close(
        info_nce(z[:2], labels[:2], queue=hard, queue_labels=torch.tensor([0])), info_nce(z[:2], labels[:2])
    )
