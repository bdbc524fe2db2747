"""``MixEncoder``: the pooled input features, the box's colour histogram and a learned residual, mixed.

The embedding is the concatenation of unit-norm blocks, each scaled by a learned weight ``w_b``, then
L2-normalised, so the cosine of two embeddings is the weighted mean ``sum w_b^2 cos_b / sum w_b^2`` of the
blocks' cosines:

- ``raw``: the detector channels of the ROI average-pooled over the 10x10 grid, times a per-channel gain and minus
  a per-channel offset (gain 1, offset 0 at init: exactly the ``raw_features`` baseline of ``roitrack val``);
- ``color``: joint HSV histograms of the upper and lower half of the box's pixels (the ``pixels``/``pixels2``
  tap; fixed, no parameters): clothes colours, top and bottom;
- ``learned``: a :class:`RoiEncoder` (conv net keeping the ROI's spatial layout) over all input channels.

At init the learned block has a small weight, so the encoder starts as (nearly) the fixed blocks it reads; training
moves the weights and the learned block, and early stopping on held-out frames keeps it from doing worse than its
start. All ops export to ONNX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tracker_core.encoder.model import MAX_PARAMS, RoiEncoder
from tracker_core.errors import InvalidInputError
from tracker_core.features import HIST_BINS, PIXEL_STRIDE, ROI_SIZE, hsv_histogram

BLOCKS = ("raw", "color", "learned")
LEARNED_INIT_WEIGHT = 0.25


class MixEncoder(nn.Module):
    """``forward(x)``: ``[N, C, 10, 10]`` (channels in the feature spec's order, ``pixels`` last) -> ``[N, D]`` unit
    norm, ``D = sum of the blocks' sizes`` (:attr:`embed_dim`).

    ``taps``: ``(stride, channels)`` in spec order; ``blocks``: a non-empty subset of :data:`BLOCKS` (``color``
    needs the pixels tap).
    """

    def __init__(
        self,
        taps: Sequence[tuple[int, int]],
        blocks: Sequence[str] = BLOCKS,
        head_dim: int = 128,
        width: int = 64,
        hidden: int = 256,
        hist_bins: Sequence[int] = HIST_BINS,
        color_stripes: int = 2,
        roi_size: int = ROI_SIZE,
    ) -> None:
        super().__init__()
        unknown = set(blocks) - set(BLOCKS)
        blocks = tuple(b for b in BLOCKS if b in set(blocks))
        if not blocks or unknown:
            raise InvalidInputError(f"MixEncoder blocks must be a non-empty subset of {BLOCKS}")
        strides = [int(s) for s, _ in taps]
        chans = [int(c) for _, c in taps]
        if PIXEL_STRIDE in strides and strides[-1] != PIXEL_STRIDE:
            raise InvalidInputError("the pixels tap must come last")
        if "color" in blocks and PIXEL_STRIDE not in strides:
            raise InvalidInputError("the color block needs the pixels tap (features ...+pixels)")
        self.blocks = blocks
        self.in_channels = sum(chans)
        self.det_channels = sum(c for s, c in zip(strides, chans, strict=True) if s != PIXEL_STRIDE)
        self.has_pixels = PIXEL_STRIDE in strides
        self.pixel_channels = chans[-1] if self.has_pixels else 0
        if self.has_pixels and self.pixel_channels not in (3, 12):
            raise InvalidInputError(f"the pixels tap has 3 or 12 channels, got {self.pixel_channels}")
        self.color_stripes = int(color_stripes)
        if not 1 <= self.color_stripes <= roi_size:
            raise InvalidInputError(f"color_stripes must be in 1..{roi_size}, got {color_stripes}")
        self.roi_size = int(roi_size)
        self.head_dim = int(head_dim)
        self.hist_bins = tuple(int(b) for b in hist_bins)
        if len(self.hist_bins) != 3 or min(self.hist_bins) < 1:
            raise InvalidInputError(f"hist_bins must be three positive counts, got {hist_bins}")
        self.meta: Any = None
        self.learned = RoiEncoder(self.in_channels, head_dim, width, hidden, roi_size)
        self.raw_gain = nn.Parameter(torch.ones(self.det_channels))
        self.raw_offset = nn.Parameter(torch.zeros(self.det_channels))
        init = [1.0 if b != "learned" else LEARNED_INIT_WEIGHT for b in blocks]
        self.log_weights = nn.Parameter(torch.log(torch.tensor(init)))
        n = self.num_parameters()
        if n > MAX_PARAMS:
            raise InvalidInputError(f"MixEncoder has {n} parameters, more than the {MAX_PARAMS} limit")

    @property
    def block_dims(self) -> dict[str, int]:
        size = {
            "raw": self.det_channels,
            "color": self.color_stripes * self.hist_bins[0] * self.hist_bins[1] * self.hist_bins[2],
            "learned": self.head_dim,
        }
        return {b: size[b] for b in self.blocks}

    @property
    def embed_dim(self) -> int:
        return sum(self.block_dims.values())

    def block_weights(self) -> dict[str, float]:
        w = self.log_weights.detach().exp()
        return {b: float(w[i]) for i, b in enumerate(self.blocks)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def input_mean(self) -> torch.Tensor:
        return self.learned.input_mean

    @property
    def input_std(self) -> torch.Tensor:
        return self.learned.input_std

    @torch.no_grad()
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Freeze the standardisation of the learned block's input (from training features)."""
        self.learned.set_input_stats(mean, std)

    @torch.no_grad()
    def set_block_weight(self, block: str, weight: float) -> None:
        self.log_weights[self.blocks.index(block)] = float(torch.log(torch.tensor(max(weight, 1e-8))))

    def color_histograms(self, x: torch.Tensor) -> torch.Tensor:
        """HSV histograms of the ROI's horizontal stripes (top to bottom), concatenated ``[N, stripes * bins]``."""
        pix = x[:, self.in_channels - self.pixel_channels :].float()
        n, c, h, w = pix.shape
        sub = pix.reshape(n, 3, c // 3, h, w)  # pixel_unshuffle order: colour-major
        hists = []
        for stripe in torch.tensor_split(sub, self.color_stripes, dim=3):
            hists.append(hsv_histogram(stripe.flatten(2, 3), self.hist_bins))
        return torch.cat(hists, dim=1)

    def block_outputs(
        self, x: torch.Tensor, learned: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Each block's unit-norm ``[N, d_b]`` (unweighted). ``learned``: what computes the learned block
        (default :attr:`learned` itself; an inference backend passes its compiled copy of it)."""
        out = {}
        if "raw" in self.blocks:
            pooled = x[:, : self.det_channels].float().mean(dim=(2, 3))
            out["raw"] = F.normalize(pooled * self.raw_gain - self.raw_offset, dim=1)
        if "color" in self.blocks:
            out["color"] = F.normalize(self.color_histograms(x), dim=1)
        if "learned" in self.blocks:
            out["learned"] = (self.learned if learned is None else learned)(x)
        return out

    def forward(
        self, x: torch.Tensor, learned: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``learned``: see :meth:`block_outputs` (the fixed blocks always run here, in float32)."""
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            pass
        elif x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (self.roi_size, self.roi_size):
            raise InvalidInputError(
                f"MixEncoder expects [N,{self.in_channels},{self.roi_size},{self.roi_size}], got {tuple(x.shape)}"
            )
        parts = self.block_outputs(x, learned)
        w = self.log_weights.exp()
        z = torch.cat([parts[b] * w[i] for i, b in enumerate(self.blocks)], dim=1)
        return F.normalize(z, dim=1)
