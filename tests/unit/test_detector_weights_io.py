"""Our .safetensors + JSON metadata format: round trip, mismatches named, corrupt files, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from tracker_core.detector import build_detector, load_detector, read_meta
from tracker_core.detector.weights_io import META_KEY, WeightsMeta, load_weights, save_weights
from tracker_core.errors import WeightsError


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    det = build_detector("yolov7-tiny", nc=2, seed=5)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(path, det.net.state_dict(), det.meta)
    return path, det


def test_round_trip_gives_identical_outputs(tiny_file):
    path, det = tiny_file
    loaded = load_detector(path)
    assert loaded.weights_sha256 == det.weights_sha256 and loaded.names == ["0", "1"]
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for a, b in zip(det.forward_raw(x), loaded.forward_raw(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    meta = read_meta(path)
    assert meta.arch == "yolov7-tiny" and meta.nc == 2 and meta.strides == [8, 16, 32]


def _rewrite(src, dst, edit_state=None, edit_meta=None):
    state, meta = load_weights(src)
    if edit_state:
        edit_state(state)
    meta_json = json.loads(meta.to_json())
    if edit_meta:
        edit_meta(meta_json)
    save_file(state, str(dst), metadata={META_KEY: json.dumps(meta_json)})
    return dst


def test_missing_tensor_is_named(tiny_file, tmp_path):
    path, _ = tiny_file
    bad = _rewrite(path, tmp_path / "b.safetensors", edit_state=lambda s: s.pop("model.37.bn.running_var"))
    with pytest.raises(WeightsError, match=r"missing tensor model\.37\.bn\.running_var"):
        load_detector(bad)


def test_wrong_shape_is_named(tiny_file, tmp_path):
    path, _ = tiny_file

    def edit(s):
        s["model.2.conv.weight"] = torch.zeros(16, 64, 1, 1)

    bad = _rewrite(path, tmp_path / "b.safetensors", edit_state=edit)
    with pytest.raises(
        WeightsError, match=r"model\.2\.conv\.weight has shape \[16, 64, 1, 1\], expected \[32, 64"
    ):
        load_detector(bad)


def test_extra_tensor_is_named(tiny_file, tmp_path):
    path, _ = tiny_file

    def edit(s):
        s["model.999.weight"] = torch.zeros(1)

    bad = _rewrite(path, tmp_path / "b.safetensors", edit_state=edit)
    with pytest.raises(WeightsError, match=r"unexpected tensor model\.999\.weight"):
        load_detector(bad)


def test_wrong_arch_in_metadata(tiny_file, tmp_path):
    path, _ = tiny_file
    bad = _rewrite(path, tmp_path / "b.safetensors", edit_meta=lambda m: m.update(arch="yolov7"))
    # yolov7's layer 0 is Conv(3->32, k3) like tiny's, so the first difference is layer 1 / 2
    with pytest.raises(
        WeightsError,
        match=r"tensor model\.2\.conv\.weight has shape \[32, 64, 1, 1\], expected \[64, 64, 3, 3\]",
    ):
        load_detector(bad)
    bad2 = _rewrite(path, tmp_path / "c.safetensors", edit_meta=lambda m: m.update(arch="resnet50"))
    with pytest.raises(WeightsError, match="unknown detector arch 'resnet50'"):
        load_detector(bad2)


def test_bad_metadata(tiny_file, tmp_path):
    path, _ = tiny_file
    bad = _rewrite(path, tmp_path / "b.safetensors", edit_meta=lambda m: m.update(names=["only-one"]))
    with pytest.raises(WeightsError, match="nc=2 but 1 class names"):
        load_detector(bad)
    state, _ = load_weights(path)
    save_file(state, str(tmp_path / "nometa.safetensors"))
    with pytest.raises(WeightsError, match="no roitrack metadata"):
        load_detector(tmp_path / "nometa.safetensors")
    bad3 = _rewrite(path, tmp_path / "d.safetensors", edit_meta=lambda m: m.update(format="other/9"))
    with pytest.raises(WeightsError, match="format"):
        load_detector(bad3)


def test_truncated_and_missing_files(tiny_file, tmp_path):
    path, _ = tiny_file
    raw = path.read_bytes()
    for n in (10, len(raw) // 2, len(raw) - 1):
        cut = tmp_path / f"cut{n}.safetensors"
        cut.write_bytes(raw[:n])
        with pytest.raises(WeightsError):
            load_detector(cut)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_detector(tmp_path / "absent.safetensors")


def test_save_is_atomic_on_failure(tmp_path):
    meta = WeightsMeta(
        arch="yolov7-tiny", nc=1, names=["a"], anchors=[[1.0] * 6] * 3, strides=[8, 16, 32], source_sha256="x"
    )
    dst = tmp_path / "out.safetensors"
    a = torch.zeros(4)
    with pytest.raises(Exception):  # noqa: B017 - safetensors refuses shared storage with its own error type
        save_weights(dst, {"a": a, "b": a[:2]}, meta)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(WeightsError, match="does not exist"):
        save_weights(tmp_path / "nodir" / "x.safetensors", {"a": a}, meta)
