"""Architecture tables, fusing maths against slow references, the Detector API and its input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tracker_core.detector import build_detector
from tracker_core.detector.fusing import fold_batchnorm, fold_implicit, repconv_kernel
from tracker_core.detector.layers import Conv, RepConv
from tracker_core.detector.model import YoloNet
from tracker_core.errors import InvalidInputError


def _randomise_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    with torch.no_grad():
        n = bn.num_features
        bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=g))
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.1)


@pytest.mark.parametrize("arch", ["yolov7", "yolov7-tiny"])
def test_state_dict_equals_official_keys_and_shapes(yolov7_reference, arch):
    manifest = json.loads((yolov7_reference / "manifest.json").read_text())["arches"][arch]
    with torch.device("meta"):
        net = YoloNet(arch)
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert list(ours) == list(manifest["state_dict_keys"])
    assert ours == manifest["state_dict_keys"]
    assert len(ours) == manifest["num_state_dict_tensors"]
    assert sum(p.numel() for p in net.parameters()) == manifest["num_params"]
    assert len(net.model) == (106 if arch == "yolov7" else 78)


def test_fold_batchnorm_matches_conv_then_bn():
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, 2, 1, bias=False)
    bn = nn.BatchNorm2d(6, eps=1e-3)
    _randomise_bn(bn, g)
    bn.eval()
    x = torch.randn(2, 4, 9, 11, generator=g)
    torch.testing.assert_close(fold_batchnorm(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("c_in", "c_out"), [(8, 8), (4, 8)])
def test_repconv_reparameterisation_matches_branches(c_in, c_out):
    g = torch.Generator().manual_seed(1)
    block = RepConv(c_in, c_out, act="silu").eval()
    assert (block.rbr_identity is not None) == (c_in == c_out)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            _randomise_bn(m, g)
    x = torch.randn(2, c_in, 7, 5, generator=g)
    # slow reference: each branch written out with functional ops
    dense = block.rbr_dense[1](F.conv2d(x, block.rbr_dense[0].weight, padding=1))
    one = block.rbr_1x1[1](F.conv2d(x, block.rbr_1x1[0].weight))
    ident = block.rbr_identity(x) if block.rbr_identity is not None else 0
    ref = F.silu(dense + one + ident)
    w, b = repconv_kernel(
        block.rbr_dense[0], block.rbr_dense[1], block.rbr_1x1[0], block.rbr_1x1[1], block.rbr_identity
    )
    torch.testing.assert_close(F.silu(F.conv2d(x, w, b, padding=1)), ref, rtol=1e-5, atol=1e-5)
    block.fuse()
    assert block.rbr_reparam is not None and not hasattr(block, "rbr_dense")
    torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-5)


def test_fold_implicit_matches_implicit_layers():
    g = torch.Generator().manual_seed(2)
    conv = nn.Conv2d(6, 10, 1)
    ia = torch.randn(1, 6, 1, 1, generator=g)
    im = torch.rand(1, 10, 1, 1, generator=g) + 0.5
    x = torch.randn(3, 6, 4, 4, generator=g)
    ref = im * conv(x + ia)
    fold_implicit(conv, ia, im)
    torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="1x1"):
        fold_implicit(nn.Conv2d(2, 2, 3), torch.zeros(1, 2, 1, 1), torch.ones(1, 2, 1, 1))


def test_conv_block_fuse():
    g = torch.Generator().manual_seed(3)
    block = Conv(3, 5, 3, 1, act="leaky").eval()
    _randomise_bn(block.bn, g)
    x = torch.randn(1, 3, 8, 8, generator=g)
    ref = block(x)
    block.fuse()
    assert block.bn is None
    torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-5)


def test_fused_tiny_matches_unfused_with_nontrivial_batchnorm():
    det = build_detector("yolov7-tiny", seed=4)
    g = torch.Generator().manual_seed(4)
    for m in det.net.modules():
        if isinstance(m, nn.BatchNorm2d):
            _randomise_bn(m, g)
    x = torch.rand(1, 3, 64, 96, generator=g)
    taps, pred = det.forward_taps(x)
    det.fuse()
    assert det.fused
    taps_f, pred_f = det.forward_taps(x)
    for s in taps:
        assert (taps_f[s] - taps[s]).abs().max() <= 1e-4 * taps[s].abs().max()
    assert (pred_f - pred).abs().max() <= 1e-4 * pred.abs().max()


def test_build_detector_attributes_and_determinism():
    a = build_detector("yolov7-tiny", nc=3, seed=0)
    b = build_detector("yolov7-tiny", nc=3, seed=0)
    c = build_detector("yolov7-tiny", nc=3, seed=1)
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert (a.arch, a.nc, a.tap_channels, a.tap_stride) == ("yolov7-tiny", 3, 256, 32)
    assert a.taps_channels == {8: 64, 16: 128, 32: 256}
    assert a.device == torch.device("cpu") and a.dtype == torch.float32
    assert not a.training
    a.train()
    assert not a.training and not a.net.training
    tap, pred = a.forward_raw(torch.rand(1, 3, 64, 64))
    assert tuple(pred.shape) == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8)
    assert tuple(tap.shape) == (1, 256, 2, 2)


@pytest.mark.parametrize("arch", ["yolov7-tiny", "yolov7"])
def test_random_build_keeps_activations_of_order_one(arch):
    """Default PyTorch init would shrink yolov7's activations into float denormals (slow CPU inference)."""
    det = build_detector(arch, nc=2)
    taps, _ = det.forward_taps(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    for t in taps.values():
        assert 0.01 < float(t.abs().mean()) < 100


def test_yolov7_taps_channels():
    with torch.device("meta"):
        net = YoloNet("yolov7")
    assert (net.channels[51], net.channels[75], net.channels[88]) == (512, 128, 256)


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(3, 64, 64),
        torch.rand(1, 1, 64, 64),
        torch.rand(1, 3, 60, 64),
        torch.zeros(1, 3, 64, 64).byte(),
    ],
    ids=["3d", "1ch", "not-mult-32", "uint8"],
)
def test_forward_rejects_bad_input(x):
    det = build_detector("yolov7-tiny", nc=2)
    with pytest.raises(InvalidInputError):
        det.forward_raw(x)


def test_preprocess_and_detect_input_checks():
    det = build_detector("yolov7-tiny", nc=2)
    frame = np.zeros((50, 70, 3), np.uint8)
    x, transforms = det.preprocess([frame, frame], (64, 96))
    assert tuple(x.shape) == (2, 3, 64, 96) and x.dtype == torch.float32
    assert float(x.max()) <= 1.0 and transforms[0].dst_w == 96
    with pytest.raises(InvalidInputError, match="multiples of 32"):
        det.preprocess([frame], (50, 64))
    with pytest.raises(InvalidInputError, match="no frames"):
        det.detect([])
    with pytest.raises(InvalidInputError, match="HxWx3 uint8"):
        det.detect([np.zeros((10, 10), np.uint8)], size=(32, 32))
    with pytest.raises(InvalidInputError, match="unknown detector arch"):
        build_detector("yolov9")
    with pytest.raises(InvalidInputError):
        build_detector("yolov7-tiny", device="cuda:99" if not torch.cuda.is_available() else "nonsense")


@pytest.mark.gpu
def test_cuda_runs_fp16_channels_last_close_to_cpu_fp32():
    cpu = build_detector("yolov7-tiny", nc=3, seed=7)
    gpu = build_detector("yolov7-tiny", nc=3, seed=7, device="cuda", fuse=True)
    assert gpu.dtype == torch.float16 and gpu.device.type == "cuda"
    x = torch.rand(2, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    tap_c, pred_c = cpu.forward_raw(x)
    tap_g, pred_g = gpu.forward_raw(x)
    assert tap_g.dtype == torch.float16
    assert (tap_g.float().cpu() - tap_c).abs().max() <= 2e-2 * tap_c.abs().max()
    assert (pred_g.float().cpu() - pred_c).abs().max() <= 2e-2 * pred_c.abs().max()
    dets = gpu.detect([np.zeros((90, 120, 3), np.uint8)], size=(128, 160), conf=0.001)
    assert dets[0].boxes.dtype == np.float32 and dets[0].tap.device.type == "cuda"
