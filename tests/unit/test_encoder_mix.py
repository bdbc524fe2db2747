"""MixEncoder, colour histograms, the pixels2 tap, held-out validation parts, checkpoint formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tracker_core.encoder import (
    EncoderMeta,
    MixEncoder,
    RoiEncoder,
    build_encoder,
    load_encoder,
    save_encoder,
)
from tracker_core.errors import ConfigError, InvalidInputError, WeightsError
from tracker_core.features import (
    box_histograms,
    hsv_histogram,
    parse_feature_spec,
    rgb_to_hsv,
    spec_roi_features,
)
from tracker_core.letterbox import letterbox_transform

TAPS = [(32, 16), (8, 8), (1, 12)]


def test_rgb_to_hsv_matches_opencv():
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    ours = (
        rgb_to_hsv(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0)[0].permute(1, 2, 0).numpy()
    )
    ref = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees
    np.testing.assert_allclose(ours[..., 0] * 360.0 % 360.0, ref[..., 0] % 360.0, atol=0.05)
    np.testing.assert_allclose(ours[..., 1:], ref[..., 1:], atol=1e-5)


def test_hsv_histogram_is_a_unit_vector_that_tells_colours_apart():
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 0.9
    blue = torch.zeros(1, 3, 4, 4)
    blue[:, 2] = 0.8
    h = hsv_histogram(torch.cat([red, blue, red * 0.95]))
    assert h.shape == (3, 72)
    torch.testing.assert_close(h.norm(dim=1), torch.ones(3))
    cos = h @ h.T
    assert cos[0, 1] < 0.01 and cos[0, 2] > 0.99
    with pytest.raises(InvalidInputError):
        hsv_histogram(torch.zeros(2, 1, 4, 4))


def test_box_histograms_reads_only_the_box():
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :15] = (200, 0, 0)
    img[:, 15:] = (0, 0, 200)
    h = box_histograms(img, np.array([[0, 0, 10, 20], [16, 0, 30, 20], [20, 5, 29, 9], [40, 40, 50, 50]]))
    assert (h[0] @ h[1]).item() < 0.01 and (h[1] @ h[2]).item() > 0.99
    assert h[3].abs().sum().item() == 0  # outside the image: zeros


def test_pixels2_tap_is_the_20x20_crop_folded_into_12_channels():
    spec = parse_feature_spec("spp+pixels2")
    assert spec.name == "spp+pixels2" and spec.pixel_scale == 2 and spec.channels(1, 3) == 12
    assert parse_feature_spec("spp+s8+pixels").pixel_scale == 1
    with pytest.raises(ConfigError):
        parse_feature_spec("spp+pixels+pixels2")
    t = letterbox_transform((40, 40), (64, 64))
    x = torch.rand(1, 3, 64, 64)
    taps = {32: torch.rand(1, 4, 2, 2), 1: x}
    f = spec_roi_features(spec, taps, [np.array([[0, 0, 40, 40]], np.float32)], [t])
    assert f.shape == (1, 4 + 12, 10, 10)
    full = spec_roi_features(
        parse_feature_spec("spp+pixels"), taps, [np.array([[0, 0, 40, 40]], np.float32)], [t]
    )
    # the 4 sub-pixels of each cell average to (nearly) the 10x10 cut
    folded = f[:, 4:].reshape(1, 3, 4, 10, 10).mean(dim=2)
    assert (folded - full[:, 4:]).abs().max().item() < 0.05


def _x(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 16 + 8 + 12, 10, 10, generator=g)


def test_mix_encoder_cosine_is_the_weighted_mean_of_its_blocks():
    m = MixEncoder(TAPS, head_dim=32, width=8, hidden=16).eval()
    x = _x()
    assert m.embed_dim == 24 + 2 * 72 + 32
    z = m(x)
    assert z.shape == (6, m.embed_dim)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))
    parts = m.block_outputs(x)
    w = m.block_weights()
    want = sum(w[b] ** 2 * (parts[b] @ parts[b].T) for b in m.blocks) / sum(v**2 for v in w.values())
    torch.testing.assert_close(z @ z.T, want, atol=1e-5, rtol=1e-5)
    # raw block at init = the pooled input features of roitrack val's raw_features baseline
    pooled = F.normalize(x[:, :24].mean(dim=(2, 3)), dim=1)
    torch.testing.assert_close(parts["raw"], pooled)
    # with the learned block off and raw off it is exactly the colour histogram of the stripes
    m.set_block_weight("learned", 0.0)
    m.set_block_weight("raw", 0.0)
    torch.testing.assert_close(m(x) @ m(x).T, parts["color"] @ parts["color"].T, atol=1e-5, rtol=1e-5)


def test_mix_encoder_rejects_bad_configs():
    with pytest.raises(InvalidInputError, match="pixels"):
        MixEncoder([(32, 16)], blocks=("raw", "color"))
    with pytest.raises(InvalidInputError, match="subset"):
        MixEncoder(TAPS, blocks=("raw", "sift"))
    with pytest.raises(InvalidInputError):
        MixEncoder(TAPS)(torch.zeros(2, 5, 10, 10))


def _meta(**kw) -> EncoderMeta:
    base = dict(
        detector_arch="yolov7-tiny",
        detector_sha256="x" * 64,
        features="spp+s8+pixels2",
        tap_channels={"32": 16, "8": 8, "1": 12},
        embed_dim=32,
        width=8,
        hidden=16,
        arch="mix",
        blocks=("raw", "color", "learned"),
    )
    base.update(kw)
    return EncoderMeta(**base)


def test_mix_checkpoint_round_trip_and_clear_refusals(tmp_path):
    meta = _meta()
    model = build_encoder(meta)
    assert isinstance(model, MixEncoder)
    model.set_block_weight("raw", 0.5)
    save_encoder(tmp_path / "e.safetensors", model, meta)
    back = load_encoder(tmp_path / "e.safetensors")
    assert isinstance(back, MixEncoder) and back.meta.arch == "mix"
    assert back.block_weights()["raw"] == pytest.approx(0.5)
    x = _x()
    torch.testing.assert_close(back(x), model.eval()(x))
    with pytest.raises(WeightsError, match="unknown to this build"):
        _meta(arch="transformer")
    with pytest.raises(WeightsError, match="pixels"):
        _meta(features="spp+s8", tap_channels={"32": 16, "8": 8})
    with pytest.raises(WeightsError, match="arch"):
        save_encoder(tmp_path / "bad.safetensors", RoiEncoder(36, 32, 8, 16), meta)


def test_version_1_checkpoints_still_load(tmp_path):
    import json

    from safetensors.torch import save_file

    model = RoiEncoder(16, embed_dim=32, width=8, hidden=16)
    old = {
        "format": "roitrack-encoder",
        "version": 1,
        "detector_arch": "yolov7-tiny",
        "detector_sha256": "y" * 64,
        "features": "spp",
        "tap_channels": {"32": 16},
        "roi_size": 10,
        "embed_dim": 32,
        "width": 8,
        "hidden": 16,
        "training": {},
        "validation": {},
    }
    path = tmp_path / "v1.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(path), {"roitrack": json.dumps(old)}
    )
    back = load_encoder(path)
    assert isinstance(back, RoiEncoder) and back.meta.arch == "conv"
