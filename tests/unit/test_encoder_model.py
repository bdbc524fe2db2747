"""RoiEncoder shape/size, checkpoint round trip, refusal of a mismatched detector, Appearance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tracker_core.encoder import (
    MAX_PARAMS,
    Appearance,
    EncoderMeta,
    RoiEncoder,
    load_encoder,
    read_meta,
    save_encoder,
)
from tracker_core.errors import InvalidInputError, WeightsError
from tracker_core.features import ROI_SIZE, parse_feature_spec, roi_features
from tracker_core.letterbox import letterbox_transform


@dataclass
class FakeDetectorInfo:
    """Only the three metadata fields the encoder checks (a real Detector has them too)."""

    arch: str = "yolov7-tiny"
    weights_sha256: str = "ab" * 32
    tap_channels: int = 256


def _meta(features="spp", channels=None, **kw):
    channels = channels or {"32": 256}
    return EncoderMeta(
        detector_arch="yolov7-tiny", detector_sha256="ab" * 32, features=features, tap_channels=channels, **kw
    )


@pytest.mark.parametrize("cin", [256, 512, 512 + 128 + 3, 256 + 64 + 3])
def test_shape_norm_and_size(cin):
    m = RoiEncoder(cin).eval()
    assert m.num_parameters() <= MAX_PARAMS
    z = m(torch.randn(5, cin, ROI_SIZE, ROI_SIZE))
    assert z.shape == (5, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    with pytest.raises(InvalidInputError):
        m(torch.randn(5, cin, 7, 7))


def test_too_big_is_refused():
    with pytest.raises(InvalidInputError):
        RoiEncoder(512, width=512, hidden=2048)


def test_checkpoint_round_trip_and_metadata(tmp_path):
    m = RoiEncoder(256, width=32).eval()
    m.set_input_stats(torch.rand(256), torch.rand(256) + 0.5)
    meta = _meta(width=32, training={"epochs": 3}, validation={"encoder": {"pooled": {"top1": 0.5}}})
    save_encoder(tmp_path / "e.safetensors", m, meta)
    got = read_meta(tmp_path / "e.safetensors")
    assert got == meta
    m2 = load_encoder(tmp_path / "e.safetensors", detector=FakeDetectorInfo())
    x = torch.randn(3, 256, ROI_SIZE, ROI_SIZE)
    torch.testing.assert_close(m2(x), m(x))
    assert m2.meta.training == {"epochs": 3}


@pytest.mark.parametrize(
    "detector",
    [
        FakeDetectorInfo(arch="yolov7"),
        FakeDetectorInfo(weights_sha256="cd" * 32),
        FakeDetectorInfo(tap_channels=512),
    ],
)
def test_mismatched_detector_is_refused(tmp_path, detector):
    save_encoder(tmp_path / "e.safetensors", RoiEncoder(256, width=32), _meta(width=32))
    with pytest.raises(WeightsError, match="another detector"):
        load_encoder(tmp_path / "e.safetensors", detector=detector)


def test_bad_files_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError):
        load_encoder(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError):
        load_encoder(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(WeightsError, match="no roitrack encoder metadata"):
        load_encoder(tmp_path / "foreign.safetensors")
    with pytest.raises(WeightsError):  # metadata says 256 channels, tensors are for 128
        save_encoder(tmp_path / "bad.safetensors", RoiEncoder(128, width=32), _meta(width=32))


def test_appearance_equals_encoder_of_roi_features(tmp_path):
    spec = parse_feature_spec("spp+s8+pixels")
    chans = {"32": 16, "8": 4, "1": 3}
    m = RoiEncoder(23, width=16).eval()
    save_encoder(tmp_path / "e.safetensors", m, _meta(features=spec.name, channels=chans, width=16))
    app = Appearance.from_checkpoint(tmp_path / "e.safetensors", detector=FakeDetectorInfo(tap_channels=16))
    t = letterbox_transform((576, 768), (640, 640))
    taps = {32: torch.rand(2, 16, 20, 20), 16: torch.rand(2, 9, 40, 40), 8: torch.rand(2, 4, 80, 80)}
    x = torch.rand(2, 3, 640, 640)
    boxes = [
        np.array([[10, 20, 60, 170]], np.float32),
        np.array([[100, 100, 150, 260], [5, 5, 40, 90]], np.float32),
    ]
    emb = app.embed(taps, boxes, [t, t], x=x)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    feats = torch.cat(
        [
            roi_features(taps[32], boxes, [t, t], 32),
            roi_features(taps[8], boxes, [t, t], 8),
            roi_features(x, boxes, [t, t], 1),
        ],
        dim=1,
    )
    np.testing.assert_allclose(emb, m(feats).detach().numpy(), atol=1e-5)
    assert app.embed(taps, [np.zeros((0, 4)), np.zeros((0, 4))], [t, t], x=x).shape == (0, 128)
    with pytest.raises(WeightsError):  # pixels needed
        app.embed(taps, boxes, [t, t])
    with pytest.raises(WeightsError):  # wrong channel count on the finer tap
        app.embed({**taps, 8: torch.rand(2, 5, 80, 80)}, boxes, [t, t], x=x)
