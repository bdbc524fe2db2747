"""Frame images from the wire -> ``HxWx3`` uint8 RGB arrays, with size checks before any large allocation.

Encoded images (JPEG, PNG) are decoded with ``cv2.imdecode``; their pixel count is read from the file header
first, so an oversized image is refused without decoding it. Raw buffers must be exactly
``width * height * channels`` bytes.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError, ResourceExhaustedError

# Raw pixel formats (the values of roitrack.v1.PixelFormat) -> channels.
PIXEL_FORMAT_RGB8 = 1
PIXEL_FORMAT_BGR8 = 2
PIXEL_FORMAT_GRAY8 = 3
_CHANNELS = {PIXEL_FORMAT_RGB8: 3, PIXEL_FORMAT_BGR8: 3, PIXEL_FORMAT_GRAY8: 1}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry the image size (all SOFn except DHT=C4, JPG=C8, DAC=CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header, or ``None`` when the header is not recognised."""
    if data[:8] == _PNG_MAGIC and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in _JPEG_SOF:
                if i + 9 > n:
                    return None
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + seglen
    return None


def _check_pixels(w: int, h: int, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise InvalidInputError(f"image has an empty size {w}x{h}")
    if w * h > max_pixels:
        raise ResourceExhaustedError(
            f"image of {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} pixels"
        )


def decode_encoded(data: bytes, max_pixels: int) -> np.ndarray:
    """JPEG/PNG bytes -> ``HxWx3`` uint8 RGB. Raises ``InvalidInputError`` / ``ResourceExhaustedError``."""
    if not data:
        raise InvalidInputError("frame has no image: send encoded JPEG/PNG bytes or a raw image")
    size = encoded_size(data)
    if size is None:
        raise InvalidInputError("image is neither a JPEG nor a PNG (unrecognised header)")
    _check_pixels(size[0], size[1], max_pixels)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise InvalidInputError(f"image could not be decoded ({len(data)} bytes; corrupt or truncated)")
    _check_pixels(img.shape[1], img.shape[0], max_pixels)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: one image buffer per frame, not two


def decode_raw(width: int, height: int, pixel_format: int, data: bytes, max_pixels: int) -> np.ndarray:
    """A raw tightly-packed buffer -> ``HxWx3`` uint8 RGB (a copy; never a view of the wire buffer)."""
    channels = _CHANNELS.get(pixel_format)
    if channels is None:
        raise InvalidInputError(f"unknown raw pixel format {pixel_format}; use RGB8, BGR8 or GRAY8")
    _check_pixels(width, height, max_pixels)
    expected = width * height * channels
    if len(data) != expected:
        raise InvalidInputError(
            f"raw image of {width}x{height} with {channels} channel(s) needs {expected} bytes, got {len(data)}"
        )
    arr = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
    if pixel_format == PIXEL_FORMAT_GRAY8:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if pixel_format == PIXEL_FORMAT_BGR8:
        return np.ascontiguousarray(arr[:, :, ::-1])
    return arr.copy()
