"""The camera-motion estimator's input from a decoded frame: a downscaled grey frame (``GrayFrame``).

The model runner decodes each frame once; for a stream with camera motion on it also hands back this small grey
frame (a NumPy ``HxWx3`` RGB frame through OpenCV; a ``[3,H,W]`` uint8 frame already on the GPU reduced there, so
only the small image crosses to the host). The estimate itself runs with the stream's tracker
(``server.processor.camera_warp``), where its per-stream state lives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracker_core.motion import GrayFrame, downscale_gray


def gray_frame(image: Any, width: int) -> GrayFrame:
    """``image``: ``HxWx3`` uint8 RGB array, or a ``[3,H,W]`` uint8 torch tensor (any device)."""
    if isinstance(image, np.ndarray):
        return downscale_gray(image, width)
    import torch
    import torch.nn.functional as F

    c, h, w = (int(v) for v in image.shape)
    x = image.float()
    g = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]) if c == 3 else x[0]
    if w > width:
        nh = max(8, round(h * width / w))
        g = F.interpolate(g[None, None], size=(nh, width), mode="area")[0, 0]
    pixels = g.round().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    return GrayFrame(np.ascontiguousarray(pixels), w, h)
