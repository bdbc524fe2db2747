"""Frame decoding: JPEG/PNG via OpenCV, raw buffers with size checks, pixel limits read from the header."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from server.decode import (
    PIXEL_FORMAT_BGR8,
    PIXEL_FORMAT_GRAY8,
    PIXEL_FORMAT_RGB8,
    decode_encoded,
    decode_raw,
    encoded_size,
)
from tracker_core.errors import InvalidInputError, ResourceExhaustedError

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_png_roundtrip_is_exact_and_rgb() -> None:
    data = cv2.imencode(".png", BGR)[1].tobytes()
    assert encoded_size(data) == (64, 48)
    out = decode_encoded(data, max_pixels=64 * 48)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, BGR[:, :, ::-1])


def test_jpeg_size_from_header_and_close_pixels() -> None:
    smooth = cv2.GaussianBlur(BGR, (7, 7), 3)
    for params in ([cv2.IMWRITE_JPEG_QUALITY, 95], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]):
        data = cv2.imencode(".jpg", smooth, params)[1].tobytes()
        assert encoded_size(data) == (64, 48)
        out = decode_encoded(data, max_pixels=10**6)
        assert np.abs(out.astype(int) - smooth[:, :, ::-1].astype(int)).mean() < 4


def test_oversized_image_refused_before_decoding() -> None:
    data = cv2.imencode(".jpg", BGR)[1].tobytes()
    with pytest.raises(ResourceExhaustedError, match="64x48 = 3072 pixels exceeds the limit of 3000"):
        decode_encoded(data, max_pixels=3000)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "no image"),
        (b"GIF89a" + b"\0" * 50, "neither a JPEG nor a PNG"),
        (cv2.imencode(".jpg", BGR)[1].tobytes()[:200] + b"\x13" * 300, "could not be decoded"),
        (cv2.imencode(".png", BGR)[1].tobytes()[:60], "could not be decoded"),
    ],
)
def test_bad_encoded_images(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        decode_encoded(data, max_pixels=10**6)


def test_raw_formats() -> None:
    rgb = BGR[:, :, ::-1].copy()
    np.testing.assert_array_equal(decode_raw(64, 48, PIXEL_FORMAT_RGB8, rgb.tobytes(), 10**6), rgb)
    np.testing.assert_array_equal(decode_raw(64, 48, PIXEL_FORMAT_BGR8, BGR.tobytes(), 10**6), rgb)
    gray = BGR[:, :, 0].copy()
    out = decode_raw(64, 48, PIXEL_FORMAT_GRAY8, gray.tobytes(), 10**6)
    assert out.shape == (48, 64, 3) and (out == gray[:, :, None]).all()
    buf = bytearray(rgb.tobytes())
    out = decode_raw(64, 48, PIXEL_FORMAT_RGB8, bytes(buf), 10**6)
    assert out.flags.writeable and out.flags.owndata  # a copy, never a view of the wire buffer


def test_raw_errors() -> None:
    with pytest.raises(InvalidInputError, match="needs 9216 bytes, got 9215"):
        decode_raw(64, 48, PIXEL_FORMAT_RGB8, b"\0" * 9215, 10**6)
    with pytest.raises(InvalidInputError, match="unknown raw pixel format 7"):
        decode_raw(64, 48, 7, b"\0" * 9216, 10**6)
    with pytest.raises(InvalidInputError, match="empty size"):
        decode_raw(0, 48, PIXEL_FORMAT_RGB8, b"", 10**6)
    with pytest.raises(ResourceExhaustedError):
        decode_raw(64, 48, PIXEL_FORMAT_GRAY8, b"\0" * 3072, 3000)
