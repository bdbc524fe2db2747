"""The YOLOv7 network built from a layer table (:mod:`tracker_core.detector.architectures`).

``YoloNet.state_dict()`` has exactly the official keys and shapes (``model.<i>.…``). One forward returns the
decoded predictions and the feature maps of the requested tap layers, so detection and appearance share a pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tracker_core.detector.architectures import ArchSpec, get_arch
from tracker_core.detector.layers import MP, SP, SPPCSPC, Concat, Conv, IDetect, RepConv, Upsample


def _abs_sources(src: int | tuple[int, ...], index: int) -> tuple[int, ...]:
    srcs = src if isinstance(src, tuple) else (src,)
    return tuple(s if s >= 0 else index + s for s in srcs)


class YoloNet(nn.Module):
    """YOLOv7 / YOLOv7-tiny: ``[B,3,H,W]`` in [0,1] (H, W multiples of 32) -> predictions + taps.

    ``anchors`` (pixels, one row ``w0,h0,w1,h1,w2,h2`` per level) default to the arch's; ``nc`` classes.
    """

    def __init__(
        self,
        arch: str | ArchSpec,
        nc: int = 80,
        anchors: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        spec = get_arch(arch) if isinstance(arch, str) else arch
        self.spec = spec
        self.nc = nc
        anchor_rows = [list(map(float, a)) for a in (anchors if anchors is not None else spec.anchors)]
        channels: list[int] = []
        sources: list[tuple[int, ...]] = []
        layers: list[nn.Module] = []
        for i, row in enumerate(spec.layers):
            srcs = _abs_sources(row.src, i)
            if any(s < 0 or s >= i for s in srcs) and i > 0:
                raise ValueError(f"{spec.name} layer {i}: bad source {row.src}")
            c_in = [3 if i == 0 else channels[s] for s in srcs]
            kind, args = row.kind, row.args
            module: nn.Module
            if kind == "Conv":
                module = Conv(c_in[0], args[0], args[1], args[2], spec.act)
                c_out = args[0]
            elif kind == "RepConv":
                module = RepConv(c_in[0], args[0], args[1], args[2], spec.act)
                c_out = args[0]
            elif kind == "SPPCSPC":
                module = SPPCSPC(c_in[0], args[0], spec.act)
                c_out = args[0]
            elif kind == "Concat":
                module = Concat()
                c_out = sum(c_in)
            elif kind == "MP":
                module = MP()
                c_out = c_in[0]
            elif kind == "SP":
                module = SP(args[0])
                c_out = c_in[0]
            elif kind == "Upsample":
                module = Upsample()
                c_out = c_in[0]
            elif kind == "IDetect":
                module = IDetect(nc, anchor_rows, c_in, list(spec.strides))
                c_out = 0
            else:
                raise ValueError(f"{spec.name} layer {i}: unknown kind {kind!r}")
            layers.append(module)
            channels.append(c_out)
            sources.append(srcs if i > 0 else (-1,))
        self.model = nn.Sequential(*layers)
        self.sources = sources
        self.channels = channels
        self.detect_index = len(layers) - 1
        # outputs referenced later than by the next layer must be kept during the forward
        self._keep = {s for i, srcs in enumerate(sources) for s in srcs if s != i - 1 and s >= 0}

    @torch.no_grad()
    def init_random(self, seed: int = 0) -> YoloNet:
        """Random weights that keep activations of order one through every layer.

        Convolutions: normal with ``std = gain / sqrt(fan_in)``, ``gain = 1 / sqrt(E[act(z)^2])`` for
        ``z ~ N(0, 1)`` and this arch's activation, so each Conv -> BN (identity at init) -> act keeps the second
        moment at one. The head gets the usual bias prior (objectness ~ 8 objects per 640x640 image, class
        probability ~ 0.6 / nc). PyTorch's default init instead shrinks activations layer after layer into float
        denormals, which makes CPU inference crawl.
        """
        g = torch.Generator().manual_seed(seed)
        z = torch.linspace(-8.0, 8.0, 16001, dtype=torch.float64)
        density = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
        act = (
            torch.nn.functional.silu(z) if self.spec.act == "silu" else torch.nn.functional.leaky_relu(z, 0.1)
        )
        second_moment = float(torch.trapezoid(act**2 * density, z))
        gain = 1.0 / math.sqrt(second_moment)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (gain / math.sqrt(fan_in)))
                if m.bias is not None:
                    m.bias.zero_()
        head = self.head
        for conv, stride in zip(head.m, head.strides, strict=True):
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.01)
            b = conv.bias.view(head.na, head.no)
            b[:, 4] = math.log(8 / (640 / stride) ** 2)
            b[:, 5:] = math.log(0.6 / (head.nc - 0.99)) if head.nc > 1 else 0.0
        return self

    @property
    def head(self) -> IDetect:
        head = self.model[self.detect_index]
        assert isinstance(head, IDetect)
        return head

    def forward(
        self, x: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """``x`` ``[B,3,H,W]`` -> (``pred`` ``[B,A,5+nc]``, ``{layer index: output map}`` for ``taps``)."""
        raws, maps = self.forward_head_raw(x, taps)
        return self.head.decode(raws), maps

    def forward_head_raw(
        self, x: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """The network without the head's decode: (per-level head logits ``[B, na*(5+nc), H/s, W/s]`` for
        :meth:`IDetect.decode`, ``{layer index: output map}`` for ``taps``). What inference backends export."""
        want = set(taps)
        keep = self._keep | want
        saved: dict[int, torch.Tensor] = {}
        prev: torch.Tensor = x
        for i, module in enumerate(self.model):
            srcs = self.sources[i]
            if isinstance(module, IDetect):
                raws = module.raw([prev if s == i - 1 else saved[s] for s in srcs])
                return raws, {t: saved[t] for t in taps}
            if len(srcs) > 1 or isinstance(module, Concat):
                inp: object = [prev if s == i - 1 else saved[s] for s in srcs]
            else:
                s = srcs[0]
                inp = prev if (s == i - 1 or i == 0) else saved[s]
            prev = module(inp)
            if i in keep:
                assert isinstance(prev, torch.Tensor)
                saved[i] = prev
        raise ValueError(
            f"{self.spec.name} has no detection head"
        )  # pragma: no cover - every table ends in one

    def forward_levels(
        self, x: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """Training: the head's raw logits, one ``[B,na,H/s,W/s,5+nc]`` per level (as :meth:`IDetect.levels`),
        instead of the decoded predictions; same taps."""
        raws, maps = self.forward_head_raw(x, taps)
        return self.head.raw_to_levels(raws), maps

    @torch.no_grad()
    def fuse(self) -> YoloNet:
        """Fold BN into convs, re-parameterise RepConv, fold implicit layers into the head. In place."""
        for module in list(self.model.modules()):
            if isinstance(module, Conv | RepConv | IDetect):
                module.fuse()
        return self
