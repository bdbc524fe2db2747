"""Pluggable appearance: an ONNX person-ReID model on image crops, beside the ROI encoder.

- :func:`load_reid_model` (``path``, :class:`ReidOptions`, device) -> :class:`ReidModel`;
  ``ReidModel.embed(images, boxes) -> list of [Ni,D]`` float32 L2-normalised, all crops of a batch together.
- :class:`ReidInputSpec`: crop size, channel order, pixel scale, mean / std (flags > JSON sidecar > model
  metadata > the model's input shape > defaults).
- :func:`reid_inputs` / :func:`crop_windows`: the crop op (``xyxy`` original-frame pixels, clipped to the frame).

onnxruntime is imported only when a model is loaded.
"""

from tracker_core.reid.crops import crop_resize, crop_windows, normalise_crops, reid_inputs
from tracker_core.reid.model import (
    DEFAULT_MAX_BATCH,
    ReidModel,
    ReidOutputError,
    file_sha256,
    l2_normalise,
    load_reid_model,
)
from tracker_core.reid.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    METADATA_KEY,
    ReidInputSpec,
    ReidOptions,
    resolve_spec,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "METADATA_KEY",
    "ReidInputSpec",
    "ReidModel",
    "ReidOptions",
    "ReidOutputError",
    "crop_resize",
    "crop_windows",
    "file_sha256",
    "l2_normalise",
    "load_reid_model",
    "normalise_crops",
    "reid_inputs",
    "resolve_spec",
]
