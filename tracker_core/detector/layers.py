"""YOLOv7 building blocks, with parameter names equal to the official checkpoints.

Every block takes ``[B,C,H,W]`` feature maps. Blocks with weights have a ``fuse()`` method that rewrites them
in place into their inference form (see :mod:`tracker_core.detector.fusing`); a fused block keeps the same
output up to float rounding but no longer matches the official state-dict layout.
"""

from __future__ import annotations

import torch
from torch import nn

from tracker_core.detector.fusing import fold_batchnorm, fold_implicit, repconv_kernel

BN_EPS = 1e-3  # the official model sets every BatchNorm2d to eps=1e-3, momentum=0.03
BN_MOMENTUM = 0.03


def make_act(name: str) -> nn.Module:
    """``"silu"`` (yolov7) or ``"leaky"`` (yolov7-tiny, negative slope 0.1)."""
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "leaky":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def batchnorm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Conv(nn.Module):
    """Conv2d (no bias, padding ``k // 2``) -> BatchNorm2d -> activation. Keys: ``conv.weight``, ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn: nn.BatchNorm2d | None = batchnorm(c_out)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the convolution (the conv gains a bias)."""
        if self.bn is None:
            return
        self.conv = fold_batchnorm(self.conv, self.bn)
        self.bn = None


class RepConv(nn.Module):
    """RepVGG-style block: ``act(bn(conv3x3(x)) + bn(conv1x1(x)) [+ bn(x)])`` (identity only when shapes allow).

    Keys: ``rbr_dense.0.weight``, ``rbr_dense.1.*``, ``rbr_1x1.0.weight``, ``rbr_1x1.1.*`` (and ``rbr_identity.*``).
    ``fuse()`` re-parameterises all branches into one 3x3 convolution with bias (``rbr_reparam``).
    """

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1, act: str = "silu") -> None:
        super().__init__()
        if k != 3:
            raise ValueError("RepConv supports k=3 only")
        self.act = make_act(act)
        self.rbr_identity: nn.BatchNorm2d | None = batchnorm(c_in) if (c_in == c_out and s == 1) else None
        self.rbr_dense = nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), batchnorm(c_out))
        self.rbr_1x1 = nn.Sequential(nn.Conv2d(c_in, c_out, 1, s, 0, bias=False), batchnorm(c_out))
        self.rbr_reparam: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.act(self.rbr_reparam(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> None:
        if self.rbr_reparam is not None:
            return
        dense_conv, dense_bn = self.rbr_dense[0], self.rbr_dense[1]
        one_conv, one_bn = self.rbr_1x1[0], self.rbr_1x1[1]
        assert isinstance(dense_conv, nn.Conv2d) and isinstance(dense_bn, nn.BatchNorm2d)
        assert isinstance(one_conv, nn.Conv2d) and isinstance(one_bn, nn.BatchNorm2d)
        weight, bias = repconv_kernel(dense_conv, dense_bn, one_conv, one_bn, self.rbr_identity)
        stride = int(dense_conv.stride[0])
        conv = nn.Conv2d(dense_conv.in_channels, dense_conv.out_channels, 3, stride, 1, bias=True)
        conv = conv.to(device=weight.device, dtype=dense_conv.weight.dtype)
        conv.weight.copy_(weight)
        assert conv.bias is not None
        conv.bias.copy_(bias)
        self.rbr_reparam = conv
        del self.rbr_dense, self.rbr_1x1
        self.rbr_identity = None


class Concat(nn.Module):
    """Concatenate a list of maps along channels."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class MP(nn.Module):
    """2x2 max-pool, stride 2 (halves H and W). Key-less; submodule ``m`` as in the official layout."""

    def __init__(self) -> None:
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class SP(nn.Module):
    """``k x k`` max-pool, stride 1, same size (the SPP pools of yolov7-tiny)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class Upsample(nn.Upsample):
    """Nearest-neighbour x2 upsampling."""

    def __init__(self) -> None:
        super().__init__(scale_factor=2.0, mode="nearest")


class SPPCSPC(nn.Module):
    """Spatial pyramid pooling, cross-stage partial (yolov7 layer 51): ``[B,c_in,H,W] -> [B,c_out,H,W]``.

    ``x1 = cv4(cv3(cv1(x)))``; ``y1 = cv6(cv5(cat(x1, pool5(x1), pool9(x1), pool13(x1))))``;
    ``y2 = cv2(x)``; output ``cv7(cat(y1, y2))``. Hidden width is ``c_out`` (the official ``e=0.5`` of ``2*c2``).
    """

    def __init__(self, c_in: int, c_out: int, act: str = "silu", pools: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = c_out
        self.cv1 = Conv(c_in, hidden, 1, 1, act)
        self.cv2 = Conv(c_in, hidden, 1, 1, act)
        self.cv3 = Conv(hidden, hidden, 3, 1, act)
        self.cv4 = Conv(hidden, hidden, 1, 1, act)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in pools)
        self.cv5 = Conv(hidden * (len(pools) + 1), hidden, 1, 1, act)
        self.cv6 = Conv(hidden, hidden, 3, 1, act)
        self.cv7 = Conv(2 * hidden, c_out, 1, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        pooled = [x1] + [pool(x1) for pool in self.m]
        y1 = self.cv6(self.cv5(torch.cat(pooled, 1)))
        y2 = self.cv2(x)
        return self.cv7(torch.cat((y1, y2), 1))


class ImplicitA(nn.Module):
    """Learned additive per-channel offset ``x + implicit`` (``implicit``: ``[1,C,1,1]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        nn.init.normal_(self.implicit, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit + x


class ImplicitM(nn.Module):
    """Learned multiplicative per-channel scale ``x * implicit`` (``implicit``: ``[1,C,1,1]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit * x


def make_grid(nx: int, ny: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cell offsets ``[1,1,ny,nx,2]`` holding ``(x, y)``."""
    yv, xv = torch.meshgrid(
        torch.arange(ny, device=device, dtype=dtype),
        torch.arange(nx, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2)


class IDetect(nn.Module):
    """Detection head with implicit layers, decoding as the official model does in eval mode.

    Inputs: ``nl`` maps ``[B,ch_i,H/s_i,W/s_i]``. Output ``[B, A, 5+nc]`` with ``A = sum(na*H_i*W_i)``: box
    centre x, y, width, height in input pixels, objectness and class probabilities (all after sigmoid).
    Buffers: ``anchors`` ``[nl,na,2]`` in grid units, ``anchor_grid`` ``[nl,1,na,1,1,2]`` in pixels.
    """

    def __init__(
        self,
        nc: int,
        anchors_px: list[list[float]],
        channels: list[int],
        strides: list[int],
    ) -> None:
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors_px)
        self.na = len(anchors_px[0]) // 2
        self.strides = tuple(int(s) for s in strides)
        a = torch.tensor(anchors_px, dtype=torch.float32).view(self.nl, self.na, 2)
        stride_t = torch.tensor(self.strides, dtype=torch.float32).view(-1, 1, 1)
        self.register_buffer("anchors", a / stride_t)
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, self.na, 1, 1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in channels)
        self.ia = nn.ModuleList(ImplicitA(c) for c in channels)
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in channels)
        self.fused = False

    @property
    def anchor_grid_t(self) -> torch.Tensor:
        grid = self.anchor_grid
        assert isinstance(grid, torch.Tensor)
        return grid

    def raw(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The head's convolutions only: per level ``[B, na*(5+nc), H_i, W_i]`` logits (before the decode)."""
        return [
            self.m[i](xs[i]) if self.fused else self.im[i](self.m[i](self.ia[i](xs[i])))
            for i in range(self.nl)
        ]

    def levels(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The raw head outputs laid out for training (logits, before any sigmoid): per level
        ``[B, na, H/s_i, W/s_i, 5+nc]`` with box ``(tx, ty, tw, th)``, objectness and class logits."""
        return self.raw_to_levels(self.raw(xs))

    def decode(self, raws: list[torch.Tensor]) -> torch.Tensor:
        """Per-level logits (:meth:`raw`) -> ``[B, A, 5+nc]`` as the official eval-mode output, in the logits'
        dtype. Inference backends run :meth:`raw` in their precision and this decode in float32 (box centres
        of several hundred pixels lose whole pixels in bfloat16)."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in raws):
            return self.decode_levels(self.raw_to_levels(raws))  # autograd needs the out-of-place operations
        # Each level is copied once into its place of the output ([B, na, H, W, no] layout), the sigmoid runs in
        # place, the 4 box columns are fixed in place: the same operations, element for element, as
        # view -> permute -> contiguous -> sigmoid -> (y*2 - 0.5 + grid) * stride, (y*2)**2 * anchor -> cat ->
        # cat (:meth:`decode_levels`), with half the passes over memory (the decode was ~25 % of a bf16 forward on
        # the CPU).
        bs = raws[0].shape[0]
        counts = [self.na * int(p.shape[2]) * int(p.shape[3]) for p in raws]
        out = torch.empty(bs, sum(counts), self.no, device=raws[0].device, dtype=raws[0].dtype)
        start = 0
        for i, p in enumerate(raws):
            _, _, ny, nx = p.shape
            dst = out[:, start : start + counts[i]].view(bs, self.na, ny, nx, self.no)
            start += counts[i]
            src = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            for b in range(bs):  # per image: a contiguous block, so the sigmoid takes its vectorised path
                dst[b].copy_(src[b]).sigmoid_()
            grid = make_grid(nx, ny, p.device, dst.dtype)
            dst[..., 0:2].mul_(2.0).sub_(0.5).add_(grid).mul_(self.strides[i])
            dst[..., 2:4].mul_(2).pow_(2).mul_(self.anchor_grid_t[i].to(dst.dtype))
        return out

    def decode_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Training-layout levels (:meth:`levels`, ``[B, na, H, W, 5+nc]``) -> ``[B, A, 5+nc]``, out of place (so
        gradients flow): the reference :meth:`decode` is checked against."""
        out = []
        for i, p in enumerate(levels):
            bs, _, ny, nx, _ = p.shape
            y = p.sigmoid()
            grid = make_grid(nx, ny, p.device, y.dtype)
            xy = (y[..., 0:2] * 2.0 - 0.5 + grid) * self.strides[i]
            wh = (y[..., 2:4] * 2) ** 2 * self.anchor_grid_t[i].to(y.dtype)
            out.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return torch.cat(out, 1)

    def raw_to_levels(self, raws: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-level logits (:meth:`raw`, ``[B, na*(5+nc), H, W]``) -> the training layout ``[B, na, H, W, 5+nc]``."""
        out = []
        for p in raws:
            bs, _, ny, nx = p.shape
            out.append(p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.decode(self.raw(xs))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold ``ImplicitA`` (before) and ``ImplicitM`` (after) into each 1x1 output convolution."""
        if self.fused:
            return
        for conv, ia, im in zip(self.m, self.ia, self.im, strict=True):
            assert isinstance(conv, nn.Conv2d) and isinstance(ia, ImplicitA) and isinstance(im, ImplicitM)
            fold_implicit(conv, ia.implicit, im.implicit)
        self.fused = True
