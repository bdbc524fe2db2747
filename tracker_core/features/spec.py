"""Which detector maps the ROI features are cut from: SPP-CSPC (stride 32), a finer tap, the pixels."""

from __future__ import annotations

from dataclasses import dataclass

from tracker_core.errors import ConfigError

TAP_NAMES: dict[str, int] = {"spp": 32, "s16": 16, "s8": 8, "pixels": 1, "pixels2": 1}
"""Name -> stride. ``spp`` is the SPP-CSPC tap, ``s16``/``s8`` the finer backbone maps, ``pixels`` the
letterboxed frame itself (values in [0,1]) cut at 10x10 (3 channels), ``pixels2`` the same cut at 20x20 and
folded into 12 channels at 10x10 (``pixel_unshuffle``: channels ``3c + ...`` hold colour ``c``'s 4 sub-pixels)."""

_STRIDE_NAMES = {v: k for k, v in TAP_NAMES.items() if k != "pixels2"}


@dataclass(frozen=True)
class FeatureSpec:
    """Ordered strides of the maps whose ROI features are concatenated along channels.

    ``strides[0]`` is always 32 (SPP-CSPC); the others are optional: 16 or 8 (a finer tap), 1 (pixels).
    """

    strides: tuple[int, ...] = (32,)
    pixel_scale: int = (
        1  # pixels tap sampled at pixel_scale x ROI_SIZE, folded into pixel_scale^2 x 3 channels
    )

    def __post_init__(self) -> None:
        if self.pixel_scale not in (1, 2):
            raise ConfigError(f"pixel scale must be 1 or 2, got {self.pixel_scale}")
        if not self.strides or self.strides[0] != 32:
            raise ConfigError(
                f"feature spec must start with the SPP-CSPC tap (stride 32), got {self.strides}"
            )
        if len(set(self.strides)) != len(self.strides):
            raise ConfigError(f"feature spec repeats a tap: {self.strides}")
        for s in self.strides:
            if s not in _STRIDE_NAMES:
                raise ConfigError(f"unknown tap stride {s}; known: {sorted(_STRIDE_NAMES)}")
        fine = [s for s in self.strides if s in (8, 16)]
        if len(fine) > 1:
            raise ConfigError("choose one finer tap: s16 or s8")

    @property
    def name(self) -> str:
        """Canonical text form, e.g. ``spp+s8+pixels``."""
        names = [_STRIDE_NAMES[s] for s in self.strides]
        return "+".join("pixels2" if n == "pixels" and self.pixel_scale == 2 else n for n in names)

    def channels(self, stride: int, map_channels: int) -> int:
        """Channels of the ROI features cut from a ``map_channels`` map at ``stride`` (pixels2: 4x)."""
        return map_channels * (self.pixel_scale**2 if stride == 1 else 1)

    @property
    def detector_strides(self) -> tuple[int, ...]:
        """Strides that come from the detector (everything except the pixels)."""
        return tuple(s for s in self.strides if s != 1)


def parse_feature_spec(text: str) -> FeatureSpec:
    """``"spp"``, ``"spp+s8"``, ``"spp+pixels"``, ``"spp+s16+pixels"`` ... -> :class:`FeatureSpec`."""
    names = [p.strip() for p in str(text).split("+") if p.strip()]
    unknown = [n for n in names if n not in TAP_NAMES]
    if unknown:
        raise ConfigError(f"unknown feature tap(s) {unknown} in {text!r}; known: {sorted(TAP_NAMES)}")
    if "pixels" in names and "pixels2" in names:
        raise ConfigError("choose one pixels tap: pixels or pixels2")
    strides = [TAP_NAMES[n] for n in names]
    if 32 in strides:
        strides.remove(32)
    order = {16: 1, 8: 1, 1: 2}
    scale = 2 if "pixels2" in names else 1
    return FeatureSpec(strides=(32, *sorted(strides, key=lambda s: order[s])), pixel_scale=scale)
