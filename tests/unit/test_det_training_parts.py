"""Parts of ``train-detector``: label assignment, loss, ignore regions, augmentation geometry, anchors, start
weights, EMA, schedules, batches, checkpoints, the raw head output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker_core.detector import build_detector
from tracker_core.detector.model import YoloNet
from tracker_core.detector.weights_io import save_weights
from tracker_core.letterbox import letterbox_transform
from training.checkpointing import load_train_state, save_train_state
from training.detector.anchors import anchor_fitness, best_possible_recall, fit_anchors
from training.detector.assign import candidates, decode_boxes, ota_assign
from training.detector.augment import (
    AugmentConfig,
    Resized,
    Sample,
    flip_lr,
    letterboxed,
    make_sample,
    mosaic4,
    random_affine,
)
from training.detector.config import DetTrainConfig
from training.detector.data import rank_batches
from training.detector.loss import YoloLoss, bbox_ciou, ignore_weights
from training.detector.model_setup import ModelEMA, build_train_net, param_groups
from training.schedule import cosine_factor, ramp

ANCHORS = torch.tensor(
    [[[10, 30], [16, 48], [24, 70]], [[30, 90], [40, 120], [60, 160]], [[80, 200], [120, 300], [200, 400]]],
    dtype=torch.float32,
)
STRIDES = [8, 16, 32]


def test_raw_levels_decode_to_the_eval_output() -> None:
    net = YoloNet("yolov7-tiny", nc=3).init_random(0).eval()
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        pred, _ = net(x)
        levels, _ = net.forward_levels(x)
    assert [tuple(p.shape) for p in levels] == [(2, 3, 16, 20, 8), (2, 3, 8, 10, 8), (2, 3, 4, 5, 8)]
    assert torch.allclose(net.head.decode_levels(levels), pred)  # the out-of-place reference decode
    raws, _ = net.forward_head_raw(x)
    assert torch.equal(net.head.decode(raws), pred)  # the in-place one serving uses
    assert torch.allclose(net.head.decode(raws), net.head.decode_levels(levels), rtol=0, atol=1e-4)


def test_candidates_take_the_centre_cell_and_the_two_nearest_neighbours() -> None:
    # one 20x60 box centred at (100.2, 60.9) px: on stride 8 cell (12, 7), fractions 0.525 / 0.6125
    t = torch.tensor([[0, 0, 100.2, 60.9, 20, 60]])
    cand = candidates([(40, 40), (20, 20), (10, 10)], t, ANCHORS, STRIDES, anchor_t=4.0)
    lv = cand[0]
    cells = sorted(set(zip(lv.gi.tolist(), lv.gj.tolist(), strict=True)))
    # x fraction 0.525 > 0.5: right neighbour (13); y fraction 0.61 > 0.5: the cell below (8)
    assert cells == [(12, 7), (12, 8), (13, 7)]
    assert sorted(set(lv.a.tolist())) == [0, 1, 2]  # 20x60 fits all three stride-8 anchors within 4x
    # stride 32: only anchors within a ratio of 4 (80x200 fits 20x60 exactly at 4x: excluded, strict <)
    assert set(cand[2].a.tolist()) == set()
    assert (cand[0].t == 0).all() and (cand[0].b == 0).all()


def test_candidates_at_the_border_stay_inside_the_grid() -> None:
    t = torch.tensor([[0, 0, 0.5, 0.5, 10, 30], [0, 0, 319.0, 319.0, 10, 30]])
    for lv, (ny, nx) in zip(
        candidates([(40, 40), (20, 20), (10, 10)], t, ANCHORS, STRIDES),
        [(40, 40), (20, 20), (10, 10)],
        strict=True,
    ):
        assert (lv.gi >= 0).all() and (lv.gi < nx).all() and (lv.gj >= 0).all() and (lv.gj < ny).all()


def _levels(batch: int = 2, nc: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, n, n, 5 + nc, generator=g) for n in (40, 20, 10)]


def test_ota_gives_every_box_a_positive_and_each_output_one_owner() -> None:
    targets = torch.tensor(
        [[0, 0, 100, 60, 20, 60], [0, 0, 108, 62, 22, 64], [1, 0, 200, 200, 40, 120], [1, 0, 50, 250, 16, 48]]
    )
    pos = ota_assign(_levels(), targets, ANCHORS, STRIDES)
    owners = torch.cat([p.t for p in pos])
    assert set(owners.tolist()) == {0, 1, 2, 3}
    keys = [
        (i, *row)
        for i, p in enumerate(pos)
        for row in zip(p.b.tolist(), p.a.tolist(), p.gj.tolist(), p.gi.tolist(), strict=True)
    ]
    assert len(keys) == len(set(keys))  # one target per output
    for p in pos:  # a positive belongs to its own image's box
        assert (targets[p.t, 0].long() == p.b).all()


def test_ota_picks_more_positives_for_a_box_predicted_well() -> None:
    t = torch.tensor([[0, 0, 100, 60, 20, 60]])
    levels = [torch.full((1, 3, n, n, 6), -4.0) for n in (40, 20, 10)]
    few = sum(len(p.b) for p in ota_assign(levels, t, ANCHORS, STRIDES))
    # make every stride-8 candidate predict the box exactly: IoU ~1 for all, dynamic k grows
    cand = candidates([(40, 40), (20, 20), (10, 10)], t, ANCHORS, STRIDES)[0]
    for a, gj, gi in zip(cand.a.tolist(), cand.gj.tolist(), cand.gi.tolist(), strict=True):
        off = torch.tensor([100 / 8 - gi, 60 / 8 - gj])
        levels[0][0, a, gj, gi, :2] = torch.logit((off + 0.5) / 2)
        wh = torch.tensor([20.0, 60.0]) / ANCHORS[0, a]
        levels[0][0, a, gj, gi, 2:4] = torch.logit(wh.sqrt() / 2)
    many = sum(len(p.b) for p in ota_assign(levels, t, ANCHORS, STRIDES))
    assert many > few >= 1


def _slow_ciou(a, b) -> float:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    iou = inter / union
    cw, ch = max(ax2, bx2) - min(ax1, bx1), max(ay2, by2) - min(ay1, by1)
    rho2 = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    v = 4 / math.pi**2 * (math.atan(b[2] / b[3]) - math.atan(a[2] / a[3])) ** 2
    alpha = v / (v - iou + 1)
    return iou - (rho2 / (cw**2 + ch**2) + v * alpha)


def test_ciou_equals_slow_reference() -> None:
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.uniform(0, 10, (20, 2)), rng.uniform(0.5, 4, (20, 2))], 1)
    b = np.concatenate([a[:, :2] + rng.normal(0, 1, (20, 2)), a[:, 2:] * rng.uniform(0.5, 2, (20, 2))], 1)
    got = bbox_ciou(torch.tensor(a), torch.tensor(b), eps=0).numpy()
    for i in range(20):
        assert got[i] == pytest.approx(_slow_ciou(a[i], b[i]), abs=1e-9)
    same = torch.tensor([[5.0, 5.0, 2.0, 6.0]])
    assert float(bbox_ciou(same, same)) == pytest.approx(1.0, abs=1e-5)


def test_ignore_weights_zero_only_inside_ignore_boxes() -> None:
    ign = torch.tensor([[1, 16, 16, 48, 48]])  # image 1, cells with centres in [16, 48] at stride 8: 2..5
    w = ignore_weights((2, 3, 10, 10, 6), ign, 8, torch.device("cpu"))
    assert w is not None and w[0].sum() == 100
    zero = (w[1, 0] == 0).nonzero().tolist()
    assert sorted({tuple(z) for z in zero}) == [(j, i) for j in range(2, 6) for i in range(2, 6)]
    assert ignore_weights((2, 3, 10, 10, 6), torch.zeros((0, 5)), 8, torch.device("cpu")) is None


def test_loss_ignores_objectness_inside_ignore_regions_but_not_elsewhere() -> None:
    loss = YoloLoss(1, ANCHORS, STRIDES, 320)
    levels = _levels(1, seed=3)
    for p in levels:
        p[..., 4] = 3.0  # confident objectness everywhere: large loss on background cells
    t = torch.zeros((0, 6))
    _, parts = loss(levels, t)
    whole = torch.tensor([[0, 0, 0, 320, 320]], dtype=torch.float32)
    _, parts_i = loss(levels, t, whole)
    assert float(parts[1]) > 1.0 and float(parts_i[1]) == 0.0  # no target, all ignored: no objectness loss
    part = torch.tensor([[0, 0, 0, 160, 320]], dtype=torch.float32)
    _, parts_h = loss(levels, t, part)
    assert float(parts_h[1]) == pytest.approx(float(parts[1]), rel=0.05)  # a mean over the cells left


@pytest.fixture
def one_thread():
    """One torch thread: two OpenMP threads of one process crawl on the shared, loaded CI cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_loss_falls_when_fitting_one_image(one_thread) -> None:
    torch.manual_seed(0)
    net = YoloNet("yolov7-tiny", nc=2).init_random(0).train()
    anchors = net.head.anchor_grid_t.detach().view(3, 3, 2)
    loss_fn = YoloLoss(2, anchors, STRIDES, 128)
    x = torch.rand(2, 3, 128, 128)
    t = torch.tensor([[0, 1, 60, 70, 20, 50], [1, 0, 100, 90, 30, 60], [1, 1, 40, 40, 16, 30]])
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    values = []
    for _ in range(15):
        levels, _ = net.forward_levels(x)
        total, parts = loss_fn(levels, t)
        opt.zero_grad()
        total.backward()
        opt.step()
        values.append(float(total.detach()))
    assert values[-1] < 0.5 * values[0]
    assert float(parts[2]) > 0  # two classes: a class loss


def _boxes_image(h: int, w: int, boxes: np.ndarray) -> np.ndarray:
    img = np.full((h, w, 3), 40, np.uint8)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1:y2, x1:x2] = 250
    return img


def _check_boxes_cover_bright_pixels(s: Sample) -> None:
    for b in s.boxes:
        x1, y1, x2, y2 = np.round(b).astype(int)
        inner = s.image[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2]
        if inner.size:
            assert inner.mean() > 200, "a box moved away from its object"


@pytest.mark.parametrize("seed", range(6))
def test_mosaic_affine_flip_keep_boxes_on_their_objects(seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(4):
        h, w = 240, 320
        xy = rng.uniform(0, [w - 40, h - 80], (3, 2))
        boxes = np.concatenate([xy, xy + np.array([30, 70])], 1).astype(np.float32)
        items.append(
            Resized(_boxes_image(h, w, boxes), np.zeros(3, np.int64), boxes, np.zeros((0, 4), np.float32))
        )
    cfg = AugmentConfig(320, (256, 320), scale=0.3, hsv_h=0, hsv_s=0, hsv_v=0, degrees=0)
    s = make_sample(items, cfg, rng, use_mosaic=True)
    assert s.image.shape == (256, 320, 3)
    assert ((s.boxes >= 0) & (s.boxes[:, [2, 3, 2, 3]] <= [320, 256, 320, 256])).all()
    _check_boxes_cover_bright_pixels(s)
    _check_boxes_cover_bright_pixels(flip_lr(s))


def test_mostly_cut_boxes_become_ignore_regions() -> None:
    box = np.array([[0, 0, 40, 100]], np.float32)
    it = Sample(_boxes_image(200, 200, box), np.zeros(1, np.int64), box, np.zeros((0, 4), np.float32))
    cfg = AugmentConfig(200, (200, 200), translate=0, scale=0)
    # shift the image so that only a 3-px strip of the box stays inside: not taught, but not background
    m_rng = np.random.default_rng(0)
    s = random_affine(
        Sample(np.roll(it.image, -37, 1), it.classes, box - [37, 0, 37, 0], it.ignore), cfg, m_rng
    )
    assert len(s.boxes) == 0 and len(s.ignore) == 1


def test_letterboxed_sample_matches_the_served_letterbox() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    boxes = np.array([[100, 100, 130, 190]], np.float32)
    s = letterboxed(Resized(img, np.zeros(1, np.int64), boxes, np.zeros((0, 4), np.float32)), (640, 640))
    t = letterbox_transform((480, 640), (640, 640))
    assert s.boxes.tolist() == t.to_input(boxes).tolist()


def test_mosaic_places_four_images_and_their_labels() -> None:
    """Each kept box lies on the canvas over its own image; boxes cut at the canvas edge to less than half are
    ignore regions, not objects."""
    items = [
        Resized(
            np.full((240, 320, 3), 10 * (k + 1), np.uint8),
            np.array([k, k]),
            np.array([[10, 10, 50, 90], [200, 100, 240, 180]], np.float32),
            np.zeros((0, 4), np.float32),
        )
        for k in range(4)
    ]
    for seed in range(5):
        s = mosaic4(items, (240, 320), np.random.default_rng(seed))
        assert s.image.shape == (480, 640, 3) and len(s.boxes) + len(s.ignore) >= 4
        assert ((s.boxes >= 0) & (s.boxes <= [640, 480, 640, 480])).all()
        for c, b in zip(s.classes, s.boxes, strict=True):
            x1, y1, x2, y2 = b.astype(int)
            assert (s.image[y1:y2, x1:x2] == 10 * (c + 1)).all()


def test_fit_anchors_recovers_box_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array(
        [[12, 30], [18, 50], [25, 70], [35, 100], [50, 140], [70, 190], [100, 250], [140, 330], [200, 420]]
    )
    wh = np.concatenate([c * rng.uniform(0.95, 1.05, (60, 2)) for c in centres])
    rows = fit_anchors(wh, generations=200, seed=0)
    k = np.asarray(rows).reshape(-1, 2)
    assert (np.diff(k.prod(1)) >= 0).all()  # small anchors first (finest stride)
    assert best_possible_recall(k, wh) == 1.0
    assert anchor_fitness(k, wh) > anchor_fitness(np.array([[10, 13], [16, 30], [33, 23]] * 3), wh)
    for c in centres:
        assert np.min(np.abs(k / c - 1).max(1)) < 0.2


def test_finetune_keeps_the_body_and_reinitialises_the_head_for_new_classes(tmp_path: Path) -> None:
    det = build_detector("yolov7-tiny", nc=80, seed=5)
    src = tmp_path / "w.safetensors"
    save_weights(src, det.net.state_dict(), det.meta)
    wh = np.tile([[20.0, 60.0]], (50, 1))
    net, info = build_train_net(None, 1, src, "auto", wh)
    assert info.arch == "yolov7-tiny" and not info.anchors_fitted  # COCO anchors pair with these boxes
    own, ref = net.state_dict(), det.net.state_dict()
    assert torch.equal(own["model.0.conv.weight"], ref["model.0.conv.weight"])
    assert own["model.77.m.0.weight"].shape[0] == 3 * 6 and all(
        k.startswith("model.77.") for k in info.reinitialised
    )
    assert torch.equal(
        own["model.77.ia.0.implicit"], ref["model.77.ia.0.implicit"]
    )  # per input channel: kept
    same_nc, info2 = build_train_net(None, 80, src, "keep", wh)
    assert info2.reinitialised == [] and torch.equal(
        same_nc.state_dict()["model.77.m.0.weight"], ref["model.77.m.0.weight"]
    )
    _, info3 = build_train_net(
        None, 80, src, "fit", np.random.default_rng(0).uniform([10, 30], [40, 120], (200, 2))
    )
    assert info3.anchors_fitted and any(".m." in k for k in info3.reinitialised)


def test_param_groups_cover_every_parameter_once() -> None:
    net = YoloNet("yolov7-tiny", nc=1)
    groups = param_groups(net, 5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert groups[1]["weight_decay"] == 5e-4 and groups[0]["weight_decay"] == groups[2]["weight_decay"] == 0


def test_ema_follows_then_slows() -> None:
    net = YoloNet("yolov7-tiny", nc=1).init_random(0)
    ema = ModelEMA(net, decay=0.9, tau=1.0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    d = 0.9 * (1 - math.exp(-1))
    k = "model.0.conv.weight"
    assert torch.allclose(ema.ema.state_dict()[k], net.state_dict()[k] - d, atol=1e-6)


def test_schedules() -> None:
    assert cosine_factor(0, 0.01) == 1 and cosine_factor(1, 0.01) == pytest.approx(0.01)
    assert cosine_factor(0.5, 0.01) == pytest.approx(0.505) and cosine_factor(2, 0.01) == pytest.approx(0.01)
    assert ramp(0, 10, 0.1, 1.0) == 0.1 and ramp(5, 10, 0.0, 1.0) == 0.5 and ramp(12, 10, 0, 1.0) == 1.0


@pytest.mark.parametrize(("n", "batch", "world"), [(10, 4, 1), (11, 2, 2), (7, 3, 3)])
def test_rank_batches_lock_step_and_cover_all(n: int, batch: int, world: int) -> None:
    per_rank = [rank_batches(n, batch, r, world, seed=0, epoch=1) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1
    assert len({tuple(len(x) for x in b) for b in per_rank}) == 1
    seen = {i for b in per_rank for batch_ in b for i in batch_}
    assert seen == set(range(n))
    assert rank_batches(n, batch, 0, world, 0, 1) != rank_batches(n, batch, 0, world, 0, 2) or n < 3


def test_checkpoint_round_trip_with_extra_modules(tmp_path: Path) -> None:
    net = YoloNet("yolov7-tiny", nc=1).init_random(0)
    ema = ModelEMA(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.rand(1, 3, 64, 64))[0].sum().backward()
    opt.step()
    with torch.no_grad():
        next(ema.ema.parameters()).add_(3.0)
    save_train_state(tmp_path / "c.safetensors", net, opt, {"progress": {"epoch": 3}}, extra={"ema": ema.ema})
    net2 = YoloNet("yolov7-tiny", nc=1)
    ema2 = ModelEMA(net2)
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    st = load_train_state(tmp_path / "c.safetensors", net2, opt2, extra={"ema": ema2.ema})
    assert st["progress"]["epoch"] == 3
    assert torch.equal(next(ema2.ema.parameters()), next(ema.ema.parameters()))
    assert torch.equal(next(net2.parameters()), next(net.parameters()))
    assert opt2.state_dict()["state"][0]["momentum_buffer"].shape == next(net.parameters()).shape


def test_config_rejects_bad_values() -> None:
    from tracker_core.errors import ConfigError

    for bad in (
        {"img_size": 100},
        {"optimizer": "lamb"},
        {"holdout": 1.0},
        {"close_mosaic": 2.0},
        {"arch": "yolov9"},
    ):
        with pytest.raises(ConfigError):
            DetTrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown"):
        DetTrainConfig.from_dict({"lr": 1})


def test_decode_boxes_matches_the_head() -> None:
    p = torch.tensor([[0.3, -0.2, 0.1, 0.4]])
    b = decode_boxes(p, torch.tensor([3]), torch.tensor([2]), torch.tensor([[20.0, 50.0]]), 8.0)
    cx = (torch.sigmoid(torch.tensor(0.3)) * 2 - 0.5 + 3) * 8
    w = (torch.sigmoid(torch.tensor(0.1)) * 2) ** 2 * 20
    assert float(b[0, 0]) == pytest.approx(float(cx - w / 2), abs=1e-5)
