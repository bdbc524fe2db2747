"""Tiny ONNX "ReID" models built in the tests (onnx.helper): the plumbing of tracker_core.reid without ../shared.

``colour_model``: ``images [B,3,H,W] -> GlobalAveragePool -> Flatten -> MatMul W [3,D] + b -> output [B,D]``, so a
crop's embedding is a known function of its mean (normalised) colour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

W = np.array([[1.0, 0.0, 0.5, 0.2], [0.0, 1.0, -0.5, 0.3], [0.3, -0.2, 1.0, 0.1]], np.float32)
B = np.array([0.1, -0.2, 0.05, 0.0], np.float32)


def colour_model(
    path: Path,
    batch: int | str = "batch",
    height: int | str = 8,
    width: int | str = 4,
    metadata: dict | None = None,
    nan: bool = False,
    two_inputs: bool = False,
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, height, width])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, W.shape[1]])
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["out0" if nan else "output"]),
    ]
    if nan:  # sqrt(-(x^2) - 1): NaN everywhere
        nodes += [
            helper.make_node("Mul", ["out0", "out0"], ["sq"]),
            helper.make_node("Neg", ["sq"], ["neg"]),
            helper.make_node("Sub", ["neg", "one"], ["below"]),
            helper.make_node("Sqrt", ["below"], ["output"]),
        ]
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")]
    inits.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    inputs = [x]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(nodes, "colour", inputs, [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"roitrack.reid": json.dumps(metadata)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def expected_embedding(x: np.ndarray) -> np.ndarray:
    """What ``colour_model`` gives for model inputs ``x [N,3,H,W]``, L2-normalised."""
    y = x.astype(np.float64).mean(axis=(2, 3)) @ W.astype(np.float64) + B
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
