"""Layer tables of YOLOv7 and YOLOv7-tiny in the training layout of the official configs.

Facts from ``cfg/training/yolov7.yaml`` and ``cfg/training/yolov7-tiny.yaml``. Each row is one layer of the
network (its index is its position, which is also its state-dict prefix ``model.<i>.``):

``L(src, kind, *args)``: ``src`` is the input layer (``-1`` = previous, negative = relative, non-negative =
absolute) or a tuple of them; ``kind`` is one of ``Conv(c_out, k, s)``, ``RepConv(c_out, k, s)``,
``SPPCSPC(c_out)``, ``Concat()``, ``MP()``, ``SP(k)``, ``Upsample()``, ``IDetect()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from tracker_core.errors import InvalidInputError


class L(NamedTuple):
    src: int | tuple[int, ...]
    kind: str
    args: tuple[int, ...] = ()


def _l(src: int | tuple[int, ...], kind: str, *args: int) -> L:
    return L(src, kind, tuple(args))


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its layers, activation, default anchors (pixels) and where the taps are."""

    name: str
    act: str  # "silu" or "leaky"
    layers: tuple[L, ...]
    anchors: tuple[tuple[int, ...], ...]  # per level: w0,h0, w1,h1, w2,h2 in input pixels
    strides: tuple[int, ...]
    tap_layer: int  # stride-32 feature tap (end of the SPP block)
    finer_taps: tuple[tuple[int, int], ...]  # (stride, layer) of the finer neck maps
    release_file: str  # name of the official release asset


# fmt: off
YOLOV7_LAYERS: tuple[L, ...] = (
    # backbone
    _l(-1, "Conv", 32, 3, 1),  # 0
    _l(-1, "Conv", 64, 3, 2),  # 1  P1/2
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 128, 3, 2),  # 3  P2/4
    _l(-1, "Conv", 64, 1, 1),
    _l(-2, "Conv", 64, 1, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l((-1, -3, -5, -6), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 11
    _l(-1, "MP"),
    _l(-1, "Conv", 128, 1, 1),
    _l(-3, "Conv", 128, 1, 1),
    _l(-1, "Conv", 128, 3, 2),
    _l((-1, -3), "Concat"),  # 16 P3/8
    _l(-1, "Conv", 128, 1, 1),
    _l(-2, "Conv", 128, 1, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l((-1, -3, -5, -6), "Concat"),
    _l(-1, "Conv", 512, 1, 1),  # 24
    _l(-1, "MP"),
    _l(-1, "Conv", 256, 1, 1),
    _l(-3, "Conv", 256, 1, 1),
    _l(-1, "Conv", 256, 3, 2),
    _l((-1, -3), "Concat"),  # 29 P4/16
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l((-1, -3, -5, -6), "Concat"),
    _l(-1, "Conv", 1024, 1, 1),  # 37
    _l(-1, "MP"),
    _l(-1, "Conv", 512, 1, 1),
    _l(-3, "Conv", 512, 1, 1),
    _l(-1, "Conv", 512, 3, 2),
    _l((-1, -3), "Concat"),  # 42 P5/32
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l((-1, -3, -5, -6), "Concat"),
    _l(-1, "Conv", 1024, 1, 1),  # 50
    # head
    _l(-1, "SPPCSPC", 512),  # 51  feature tap [B,512,H/32,W/32]
    _l(-1, "Conv", 256, 1, 1),
    _l(-1, "Upsample"),
    _l(37, "Conv", 256, 1, 1),  # route backbone P4
    _l((-1, -2), "Concat"),
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l((-1, -2, -3, -4, -5, -6), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 63
    _l(-1, "Conv", 128, 1, 1),
    _l(-1, "Upsample"),
    _l(24, "Conv", 128, 1, 1),  # route backbone P3
    _l((-1, -2), "Concat"),
    _l(-1, "Conv", 128, 1, 1),
    _l(-2, "Conv", 128, 1, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l((-1, -2, -3, -4, -5, -6), "Concat"),
    _l(-1, "Conv", 128, 1, 1),  # 75  stride 8
    _l(-1, "MP"),
    _l(-1, "Conv", 128, 1, 1),
    _l(-3, "Conv", 128, 1, 1),
    _l(-1, "Conv", 128, 3, 2),
    _l((-1, -3, 63), "Concat"),
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l((-1, -2, -3, -4, -5, -6), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 88  stride 16
    _l(-1, "MP"),
    _l(-1, "Conv", 256, 1, 1),
    _l(-3, "Conv", 256, 1, 1),
    _l(-1, "Conv", 256, 3, 2),
    _l((-1, -3, 51), "Concat"),
    _l(-1, "Conv", 512, 1, 1),
    _l(-2, "Conv", 512, 1, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l((-1, -2, -3, -4, -5, -6), "Concat"),
    _l(-1, "Conv", 512, 1, 1),  # 101
    _l(75, "RepConv", 256, 3, 1),
    _l(88, "RepConv", 512, 3, 1),
    _l(101, "RepConv", 1024, 3, 1),
    _l((102, 103, 104), "IDetect"),  # 105
)

YOLOV7_TINY_LAYERS: tuple[L, ...] = (
    # backbone
    _l(-1, "Conv", 32, 3, 2),  # 0  P1/2
    _l(-1, "Conv", 64, 3, 2),  # 1  P2/4
    _l(-1, "Conv", 32, 1, 1),
    _l(-2, "Conv", 32, 1, 1),
    _l(-1, "Conv", 32, 3, 1),
    _l(-1, "Conv", 32, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 64, 1, 1),  # 7
    _l(-1, "MP"),  # 8  P3/8
    _l(-1, "Conv", 64, 1, 1),
    _l(-2, "Conv", 64, 1, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 128, 1, 1),  # 14
    _l(-1, "MP"),  # 15 P4/16
    _l(-1, "Conv", 128, 1, 1),
    _l(-2, "Conv", 128, 1, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 21
    _l(-1, "MP"),  # 22 P5/32
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l(-1, "Conv", 256, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 512, 1, 1),  # 28
    # head: SPP block (29-37)
    _l(-1, "Conv", 256, 1, 1),
    _l(-2, "Conv", 256, 1, 1),
    _l(-1, "SP", 5),
    _l(-2, "SP", 9),
    _l(-3, "SP", 13),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 256, 1, 1),
    _l((-1, -7), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 37  feature tap [B,256,H/32,W/32]
    _l(-1, "Conv", 128, 1, 1),
    _l(-1, "Upsample"),
    _l(21, "Conv", 128, 1, 1),  # route backbone P4
    _l((-1, -2), "Concat"),
    _l(-1, "Conv", 64, 1, 1),
    _l(-2, "Conv", 64, 1, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 128, 1, 1),  # 47
    _l(-1, "Conv", 64, 1, 1),
    _l(-1, "Upsample"),
    _l(14, "Conv", 64, 1, 1),  # route backbone P3
    _l((-1, -2), "Concat"),
    _l(-1, "Conv", 32, 1, 1),
    _l(-2, "Conv", 32, 1, 1),
    _l(-1, "Conv", 32, 3, 1),
    _l(-1, "Conv", 32, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 64, 1, 1),  # 57  stride 8
    _l(-1, "Conv", 128, 3, 2),
    _l((-1, 47), "Concat"),
    _l(-1, "Conv", 64, 1, 1),
    _l(-2, "Conv", 64, 1, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l(-1, "Conv", 64, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 128, 1, 1),  # 65  stride 16
    _l(-1, "Conv", 256, 3, 2),
    _l((-1, 37), "Concat"),
    _l(-1, "Conv", 128, 1, 1),
    _l(-2, "Conv", 128, 1, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l(-1, "Conv", 128, 3, 1),
    _l((-1, -2, -3, -4), "Concat"),
    _l(-1, "Conv", 256, 1, 1),  # 73
    _l(57, "Conv", 128, 3, 1),
    _l(65, "Conv", 256, 3, 1),
    _l(73, "Conv", 512, 3, 1),
    _l((74, 75, 76), "IDetect"),  # 77
)
# fmt: on

ARCHES: dict[str, ArchSpec] = {
    "yolov7": ArchSpec(
        name="yolov7",
        act="silu",
        layers=YOLOV7_LAYERS,
        anchors=((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401)),
        strides=(8, 16, 32),
        tap_layer=51,
        finer_taps=((8, 75), (16, 88)),
        release_file="yolov7.pt",
    ),
    "yolov7-tiny": ArchSpec(
        name="yolov7-tiny",
        act="leaky",
        layers=YOLOV7_TINY_LAYERS,
        anchors=((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326)),
        strides=(8, 16, 32),
        tap_layer=37,
        finer_taps=((8, 57), (16, 65)),
        release_file="yolov7-tiny.pt",
    ),
}


def get_arch(name: str) -> ArchSpec:
    """The :class:`ArchSpec` called ``name``; :class:`InvalidInputError` listing the known ones otherwise."""
    try:
        return ARCHES[name]
    except KeyError:
        raise InvalidInputError(f"unknown detector arch {name!r}; known: {', '.join(ARCHES)}") from None
