"""Decode and letterbox on the model's device (the GPU when there is one): JPEG via ``torchvision.io.decode_jpeg``
(nvJPEG on CUDA, batched), resize + pad with torch, so frames cross the bus as compressed bytes.

The placement (scale, padding) comes from ``tracker_core.letterbox.letterbox_transform``, the one place that maps
original pixels to input pixels; the resampling is bilinear on the same half-pixel grid as OpenCV's INTER_LINEAR,
rounded to 8-bit like OpenCV, so results match the CPU path to within a grey level or so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from server.decode import encoded_size
from server.frames import EncodedImage, FrameInput, detached
from tracker_core.errors import InvalidInputError, ResourceExhaustedError, RoitrackError
from tracker_core.letterbox import PAD_VALUE, LetterboxTransform, letterbox_transform

Decoded = tuple[torch.Tensor | None, RoitrackError | None, str]  # ([3,H,W] uint8, error, reason)


def _decode_jpeg(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    with (
        warnings.catch_warnings()
    ):  # torchvision 0.29 flags its codecs as deprecated (in favour of TorchCodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))


def _is_jpeg(inp: FrameInput) -> bool:
    return isinstance(inp.image, EncodedImage) and inp.image.data[:2] == b"\xff\xd8"


def decode_to_device(inputs: Sequence[FrameInput], device: torch.device, max_pixels: int) -> list[Decoded]:
    """Every frame as a ``[3,H,W]`` uint8 RGB tensor on ``device``, or its error. Frames with malformed client
    detections are refused without decoding; JPEGs are decoded on the device in one batched call; other formats
    are decoded on the CPU and uploaded."""
    out: list[Decoded] = [(None, None, "")] * len(inputs)
    jpeg_idx = []
    for i, inp in enumerate(inputs):
        if inp.client_detections is not None:  # malformed boxes: refused before any decoding
            try:
                inp.client_detections.validate()
            except RoitrackError as exc:
                out[i] = (None, detached(exc), "invalid_detections")
                continue
        if _is_jpeg(inp):
            size = encoded_size(inp.image.data)  # type: ignore[union-attr]
            if size is None:
                out[i] = (
                    None,
                    InvalidInputError("JPEG header has no frame size (corrupt or truncated)"),
                    "invalid_image",
                )
            elif size[0] * size[1] > max_pixels:
                err = ResourceExhaustedError(
                    f"image of {size[0]}x{size[1]} = {size[0] * size[1]} pixels exceeds the limit of {max_pixels} pixels"
                )
                out[i] = (None, err, "image_too_large")
            elif size[0] <= 0 or size[1] <= 0:
                out[i] = (
                    None,
                    InvalidInputError(f"image has an empty size {size[0]}x{size[1]}"),
                    "invalid_image",
                )
            else:
                jpeg_idx.append(i)
            continue
        try:
            rgb = inp.image.decode(max_pixels)
        except ResourceExhaustedError as exc:
            out[i] = (None, detached(exc), "image_too_large")
            continue
        except RoitrackError as exc:
            out[i] = (None, detached(exc), "invalid_image")
            continue
        t = torch.from_numpy(np.ascontiguousarray(rgb)).to(device, non_blocking=True).permute(2, 0, 1)
        out[i] = (t, None, "")
    if jpeg_idx:
        datas = [torch.frombuffer(bytearray(inputs[i].image.data), dtype=torch.uint8) for i in jpeg_idx]  # type: ignore[union-attr]
        try:
            imgs = _decode_jpeg(datas, device)
            for i, img in zip(jpeg_idx, imgs, strict=True):
                out[i] = (img, None, "")
        except RuntimeError:  # one bad JPEG fails the batched call: decode one by one to find it
            for i, d in zip(jpeg_idx, datas, strict=True):
                try:
                    out[i] = (_decode_jpeg([d], device)[0], None, "")
                except RuntimeError:
                    n = len(d)
                    out[i] = (
                        None,
                        InvalidInputError(f"image could not be decoded ({n} bytes; corrupt or truncated)"),
                        "invalid_image",
                    )
    return out


def letterbox_tensor(
    img: torch.Tensor, dst_hw: tuple[int, int], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, LetterboxTransform]:
    """``img`` ``[3,H,W]`` uint8 -> (``[3,dst_h,dst_w]`` in [0,1] of ``dtype`` on the same device, transform)."""
    _, h, w = img.shape
    t = letterbox_transform((h, w), dst_hw)
    nw, nh = t.resized_wh
    x = img.unsqueeze(0).float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
        x = x.round_().clamp_(0, 255)
    out = torch.full((1, 3, t.dst_h, t.dst_w), float(PAD_VALUE), device=img.device)
    out[:, :, t.pad_top : t.pad_top + nh, t.pad_left : t.pad_left + nw] = x
    return out[0].div_(255.0).to(dtype), t


def letterbox_batch(
    imgs: Sequence[torch.Tensor], dst_hw: tuple[int, int], dtype: torch.dtype, channels_last: bool
) -> tuple[torch.Tensor, list[LetterboxTransform]]:
    """Letterbox every image and stack them: ``[B,3,dst_h,dst_w]``."""
    boxed, transforms = [], []
    for img in imgs:
        x, t = letterbox_tensor(img, dst_hw, dtype)
        boxed.append(x)
        transforms.append(t)
    x = torch.stack(boxed)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), transforms
