"""What a ReID model wants as input: crop size, channel order, pixel scale, mean and std.

Resolved from, in increasing precedence: defaults (RGB, pixels / 255, ImageNet mean / std - the convention of
torchreid, FastReID and BoxMOT models), the model's own metadata (an ONNX ``metadata_props`` entry
``roitrack.reid`` holding a JSON object), a JSON sidecar file (``FILE.json`` beside ``FILE.onnx``, or one given
explicitly), then flags. The crop size may also come from the model's static input shape ``[B,3,H,W]``; a size
given elsewhere that contradicts a static shape is an error.

JSON keys (sidecar and metadata alike): ``height``, ``width`` (pixels), ``channels`` (``"rgb"`` | ``"bgr"``: the
order the model expects), ``mean`` and ``std`` (three numbers each, in the model's channel order, in units of the
scaled pixel), ``pixel_scale`` (pixels are divided by it first: 255 for models on [0, 1], 1 for models on 0..255).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker_core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("rgb", "bgr")
METADATA_KEY = "roitrack.reid"
SPEC_KEYS = ("height", "width", "channels", "mean", "std", "pixel_scale")
MAX_SIDE = 2048


@dataclass(frozen=True)
class ReidInputSpec:
    """The model's input: crops resized to ``height x width``, in ``channels`` order, as
    ``(pixel / pixel_scale - mean) / std`` per channel, laid out ``[N,3,height,width]`` float32."""

    height: int
    width: int
    channels: str = "rgb"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pixel_scale: float = 255.0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIDE:
                raise ConfigError(f"ReID input {name} must be an integer in 1..{MAX_SIDE}, got {v!r}")
        if self.channels not in CHANNEL_ORDERS:
            raise ConfigError(f"ReID channel order must be rgb or bgr, got {self.channels!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(x, float) and math.isfinite(x) for x in v):
                raise ConfigError(f"ReID {name} must be three finite numbers, got {v!r}")
        if not all(s > 0 for s in self.std):
            raise ConfigError(f"ReID std must be positive, got {self.std!r}")
        if not (math.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise ConfigError(f"ReID pixel_scale must be a positive number, got {self.pixel_scale!r}")

    def describe(self) -> str:
        mean = ",".join(f"{v:g}" for v in self.mean)
        std = ",".join(f"{v:g}" for v in self.std)
        return (
            f"{self.height}x{self.width} {self.channels.upper()}, pixels/{self.pixel_scale:g}, "
            f"mean {mean}, std {std}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ReidOptions:
    """Input settings given by the user (flags / server config); ``None`` = not given. ``config``: a JSON sidecar
    path (default: ``FILE.json`` beside the model, when it exists)."""

    height: int | None = None
    width: int | None = None
    channels: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    pixel_scale: float | None = None
    config: str | None = None

    @classmethod
    def from_strings(
        cls,
        size: str | None = None,
        channels: str | None = None,
        mean: str | None = None,
        std: str | None = None,
        pixel_scale: float | str | None = None,
        config: str | None = None,
    ) -> ReidOptions:
        """From flag text: ``size`` ``"256x128"`` (height x width), ``mean``/``std`` ``"0.485,0.456,0.406"``."""
        h, w = parse_size(size) if size else (None, None)
        return cls(
            height=h,
            width=w,
            channels=parse_channels(channels) if channels else None,
            mean=parse_triple(mean, "mean") if mean else None,
            std=parse_triple(std, "std") if std else None,
            pixel_scale=_number(pixel_scale, "pixel_scale") if pixel_scale not in (None, "") else None,
            config=config or None,
        )

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SPEC_KEYS if getattr(self, k) is not None}


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> ``(256, 128)`` (height, width)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        h, w = (int(p.strip()) for p in parts)
    except ValueError:
        raise ConfigError(f"ReID input size must be HEIGHTxWIDTH (e.g. 256x128), got {text!r}") from None
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ConfigError(f"ReID input size must be within 1..{MAX_SIDE} per side, got {text!r}")
    return h, w


def parse_channels(text: str) -> str:
    t = str(text).strip().lower()
    if t not in CHANNEL_ORDERS:
        raise ConfigError(f"ReID channel order must be rgb or bgr, got {text!r}")
    return t


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise ConfigError(f"ReID {name}: expected a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"ReID {name}: expected a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ConfigError(f"ReID {name}: expected a finite number, got {v!r}")
    return f


def parse_triple(v: Any, name: str) -> tuple[float, float, float]:
    """Three numbers from ``"a,b,c"`` or a list."""
    items = [s for s in str(v).split(",")] if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or len(items) != 3:
        raise ConfigError(f"ReID {name} must be three numbers (e.g. 0.485,0.456,0.406), got {v!r}")
    a, b, c = (_number(x, name) for x in items)
    return (a, b, c)


def _int(v: Any, name: str) -> int:
    f = _number(v, name)
    if f != int(f):
        raise ConfigError(f"ReID {name}: expected an integer, got {v!r}")
    return int(f)


def spec_fields(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked spec fields of a JSON object (sidecar or metadata); unknown keys are a ``ConfigError``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a JSON object with keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} (known: {', '.join(SPEC_KEYS)})")
    out: dict[str, Any] = {}
    try:
        for k, v in data.items():
            if k in ("height", "width"):
                out[k] = _int(v, k)
            elif k == "channels":
                out[k] = parse_channels(v)
            elif k in ("mean", "std"):
                out[k] = parse_triple(v, k)
            else:
                out[k] = _number(v, k)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return out


def read_sidecar(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"ReID config {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"ReID config {p} is not a readable JSON file: {exc}") from None
    return spec_fields(data, f"ReID config {p}")


def sidecar_path(model_path: str | Path, explicit: str | None) -> Path | None:
    """The explicit sidecar, else ``FILE.json`` beside ``FILE.onnx`` when it exists."""
    if explicit:
        return Path(explicit)
    beside = Path(model_path).with_suffix(".json")
    return beside if beside.is_file() else None


def resolve_spec(
    model_path: str | Path,
    static_hw: tuple[int | None, int | None],
    metadata: Mapping[str, str],
    options: ReidOptions | None = None,
) -> tuple[ReidInputSpec, dict[str, str]]:
    """The input spec and where each field came from (``{"height": "model input", "mean": "default", ...}``)."""
    options = options or ReidOptions()
    fields: dict[str, Any] = {
        "channels": "rgb",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "pixel_scale": 255.0,
    }
    origin = dict.fromkeys(fields, "default")
    h, w = static_hw
    if h is not None and w is not None:
        fields.update(height=h, width=w)
        origin.update(height="model input", width="model input")
    layers: list[tuple[str, dict[str, Any]]] = []
    if METADATA_KEY in metadata:
        try:
            meta = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"ReID model {model_path}: metadata {METADATA_KEY!r} is not JSON: {exc}"
            ) from None
        layers.append(
            ("model metadata", spec_fields(meta, f"ReID model {model_path} metadata {METADATA_KEY}"))
        )
    side = sidecar_path(model_path, options.config)
    if side is not None:
        layers.append((f"config {side.name}", read_sidecar(side)))
    layers.append(("flag", options.given()))
    for name, layer in layers:
        fields.update(layer)
        origin.update(dict.fromkeys(layer, name))
    if "height" not in fields or "width" not in fields:
        raise ConfigError(
            f"ReID model {model_path} has no fixed input size: give it with --reid-size HEIGHTxWIDTH "
            "(e.g. 256x128), a JSON sidecar or the model's metadata"
        )
    for name, static in (("height", h), ("width", w)):
        if static is not None and fields[name] != static:
            raise ConfigError(
                f"ReID model {model_path} takes input {name} {static}, but {origin[name]} gives {fields[name]}"
            )
    return ReidInputSpec(**fields), origin
