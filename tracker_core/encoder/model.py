"""``RoiEncoder``: ``[N,C,10,10]`` ROI features -> ``[N,128]`` L2-normalised appearance embeddings."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tracker_core.errors import InvalidInputError
from tracker_core.features import ROI_SIZE

MAX_PARAMS = 3_000_000


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class RoiEncoder(nn.Module):
    """A small conv net over ROI features that keeps their spatial layout (head/torso/legs differ).

    ``forward(x)``: ``x`` float ``[N, in_channels, 10, 10]`` -> ``[N, embed_dim]`` with unit L2 norm.

    Layers: per-channel input standardisation (frozen statistics of the training features, buffers
    ``input_mean``/``input_std``), 1x1 conv to ``width``, 3x3 conv, 3x3 stride-2 conv (10x10 -> 5x5), flatten,
    ``Linear -> hidden -> embed_dim``. About 0.53M parameters at the default ``width=64`` (256 input channels) (limit :data:`MAX_PARAMS`).
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 128,
        width: int = 64,
        hidden: int = 256,
        roi_size: int = ROI_SIZE,
    ) -> None:
        super().__init__()
        if in_channels <= 0 or embed_dim <= 0 or width <= 0 or hidden <= 0:
            raise InvalidInputError("RoiEncoder sizes must be positive")
        self.in_channels = int(in_channels)
        self.embed_dim = int(embed_dim)
        self.width = int(width)
        self.hidden = int(hidden)
        self.roi_size = int(roi_size)
        self.meta: Any = None  # EncoderMeta when loaded from a checkpoint
        self.input_mean: torch.Tensor
        self.input_std: torch.Tensor
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))
        self.features = nn.Sequential(
            _conv_bn(in_channels, width, 1),
            _conv_bn(width, width, 3),
            _conv_bn(width, width, 3, stride=2),
        )
        side = (roi_size + 1) // 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, embed_dim),
        )
        n = self.num_parameters()
        if n > MAX_PARAMS:
            raise InvalidInputError(f"RoiEncoder has {n} parameters, more than the {MAX_PARAMS} limit")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Freeze the per-channel statistics used to standardise the input (from training features)."""
        self.input_mean.copy_(mean.reshape(-1).to(self.input_mean))
        self.input_std.copy_(std.reshape(-1).clamp_min(1e-6).to(self.input_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            pass
        elif x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (self.roi_size, self.roi_size):
            raise InvalidInputError(
                f"RoiEncoder expects [N,{self.in_channels},{self.roi_size},{self.roi_size}], got {tuple(x.shape)}"
            )
        x = (x - self.input_mean[None, :, None, None]) / self.input_std[None, :, None, None]
        z = self.head(self.features(x))
        return F.normalize(z.float(), dim=1)
