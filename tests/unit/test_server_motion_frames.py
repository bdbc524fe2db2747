"""The model runner's grey frame for camera motion: NumPy (CPU decode) and torch (GPU decode) paths agree, and
the runner returns it only for streams that estimate camera motion."""

from __future__ import annotations

import numpy as np
import torch

from server.frames import DecodedImage, FrameInput
from server.motion_frames import gray_frame


def test_tensor_and_array_paths_agree() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (480, 960, 3), dtype=np.uint8)
    a = gray_frame(rgb, 320)
    t = gray_frame(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), 320)
    assert a.pixels.shape == t.pixels.shape == (160, 320)
    assert (a.orig_w, a.orig_h) == (t.orig_w, t.orig_h) == (960, 480)
    assert a.scale == (3.0, 3.0)
    assert np.abs(a.pixels.astype(int) - t.pixels.astype(int)).max() <= 2  # rounding / grey weights


def test_runner_returns_the_grey_frame_only_when_asked() -> None:
    from tests.integration.server_harness import tiny_runner

    runner = tiny_runner(False)
    img = np.zeros((120, 200, 3), np.uint8)
    with_cm, without = runner.run(
        [FrameInput(DecodedImage(img), camera_motion=True), FrameInput(DecodedImage(img))]
    )
    assert with_cm.gray is not None and with_cm.gray.pixels.shape == (
        120,
        200,
    )  # narrower than 320: not scaled
    assert "camera_motion" in with_cm.stage_s
    assert without.gray is None and "camera_motion" not in without.stage_s
