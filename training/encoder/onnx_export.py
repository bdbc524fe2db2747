"""Export a trained encoder to ONNX (dynamic batch axis) and check it against PyTorch with onnxruntime.

Both architectures export: a ``MixEncoder``'s colour histogram is built from elementwise ops, comparisons and
sums only, so the graph holds the whole embedding (input ``[N,C,10,10]`` as the server cuts it)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from tracker_core.encoder import load_encoder
from tracker_core.errors import WeightsError

INPUT, OUTPUT = "roi_features", "embeddings"


def export_encoder_onnx(
    encoder_path: str | Path,
    out: str | Path,
    opset: int = 17,
    atol: float = 1e-4,
    batches: tuple[int, ...] = (1, 7, 33),
) -> dict:
    """Write ``out`` (ONNX, input ``[N,C,10,10]``, output ``[N,D]``); raise ``WeightsError`` if outputs differ."""
    import onnx
    import onnxruntime as ort

    model = load_encoder(encoder_path, device="cpu").eval()
    meta = model.meta
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, model.in_channels, model.roi_size, model.roi_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    proto.metadata_props.add(key="roitrack_encoder", value=meta.to_json())
    onnx.save(proto, str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for n in batches:
        x = torch.randn(n, model.in_channels, model.roi_size, model.roi_size, generator=g)
        x = x * model.input_std[None, :, None, None] + model.input_mean[None, :, None, None]
        pix = int(getattr(model, "pixel_channels", 0))
        if pix:  # the pixels tap holds colours in [0,1]
            x[:, -pix:] = torch.rand(n, pix, model.roi_size, model.roi_size, generator=g)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run([OUTPUT], {INPUT: x.numpy()})[0]
        if got.shape != ref.shape:
            raise WeightsError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for batch {n}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > atol:
        raise WeightsError(f"ONNX export differs from PyTorch by {worst:.2e} (> {atol})")
    return {
        "input": INPUT,
        "output": OUTPUT,
        "in_channels": model.in_channels,
        "embed_dim": model.embed_dim,
        "max_abs_diff": worst,
        "checked_batches": list(batches),
        "meta": json.loads(meta.to_json()),
    }
