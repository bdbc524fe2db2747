"""``roitrack export-onnx``: dynamic batch axis, outputs equal to PyTorch under onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from roitrack_cli.main import main


def test_export_matches_pytorch_for_any_batch(tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    from tracker_core.encoder import EncoderMeta, RoiEncoder, load_encoder, save_encoder

    m = RoiEncoder(256 + 64 + 3, width=32)
    m.set_input_stats(torch.rand(323), torch.rand(323) + 0.5)
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode folding is exercised
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    meta = EncoderMeta(
        detector_arch="yolov7-tiny", detector_sha256="0" * 64, features="spp+s8+pixels",
        tap_channels={"32": 256, "8": 64, "1": 3}, width=32,
    )  # fmt: skip
    save_encoder(tmp_path / "enc.safetensors", m, meta)
    assert (
        main(
            ["export-onnx", "--encoder", str(tmp_path / "enc.safetensors"), "--out", str(tmp_path / "e.onnx")]
        )
        == 0
    )
    assert "max |onnx - torch|" in capsys.readouterr().out
    proto = onnx.load(str(tmp_path / "e.onnx"))
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch" and not dim0.HasField("dim_value")
    assert any(p.key == "roitrack_encoder" for p in proto.metadata_props)
    sess = ort.InferenceSession(str(tmp_path / "e.onnx"), providers=["CPUExecutionProvider"])
    ref_model = load_encoder(tmp_path / "enc.safetensors")
    for n in (1, 4, 19):
        x = torch.randn(n, 323, 10, 10) * 3
        got = sess.run(None, {"roi_features": x.numpy()})[0]
        with torch.no_grad():
            ref = ref_model(x).numpy()
        assert got.shape == (n, 128)
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_export_of_the_mix_encoder_matches_pytorch(tmp_path, capsys):
    import onnxruntime as ort

    from tracker_core.encoder import EncoderMeta, MixEncoder, load_encoder, save_encoder

    taps = {"32": 256, "8": 64, "1": 12}
    torch.manual_seed(0)
    m = MixEncoder([(int(k), v) for k, v in taps.items()], width=32)
    m.set_block_weight("learned", 1.0)
    m.set_block_weight("raw", 0.5)
    meta = EncoderMeta(
        detector_arch="yolov7-tiny", detector_sha256="0" * 64, features="spp+s8+pixels2",
        tap_channels=taps, width=32, arch="mix", blocks=m.blocks,
    )  # fmt: skip
    save_encoder(tmp_path / "mix.safetensors", m, meta)
    args = ["export-onnx", "--encoder", str(tmp_path / "mix.safetensors"), "--out", str(tmp_path / "m.onnx")]
    assert main(args) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    ref_model = load_encoder(tmp_path / "mix.safetensors")
    for n in (1, 5):
        x = torch.randn(n, 332, 10, 10)
        x[:, 320:] = torch.rand(n, 12, 10, 10)
        got = sess.run(None, {"roi_features": x.numpy()})[0]
        with torch.no_grad():
            ref = ref_model(x).numpy()
        assert got.shape == (n, 320 + 2 * 72 + 128)
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_export_of_missing_encoder_exits_2(tmp_path, capsys):
    assert (
        main(
            [
                "export-onnx",
                "--encoder",
                str(tmp_path / "nope.safetensors"),
                "--out",
                str(tmp_path / "e.onnx"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
