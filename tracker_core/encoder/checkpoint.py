"""Encoder checkpoints: ``.safetensors`` tensors + JSON metadata (never pickle).

The metadata (``EncoderMeta``) names the detector the encoder reads (arch, weights sha256, tap channels), the
feature taps, ROI size, embedding size, model sizes, training config and validation metrics. Loading refuses a
detector that does not match with :class:`~tracker_core.errors.WeightsError`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tracker_core.encoder.mix import BLOCKS, MixEncoder
from tracker_core.encoder.model import RoiEncoder
from tracker_core.errors import InvalidInputError, WeightsError
from tracker_core.features import HIST_BINS, ROI_SIZE, FeatureSpec, parse_feature_spec

FORMAT = "roitrack-encoder"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: the conv-only RoiEncoder (no ``arch``/``blocks`` fields)
ARCHS = ("conv", "mix")
META_KEY = "roitrack"


class DetectorInfo(Protocol):
    """What the encoder needs to know about a detector (``tracker_core.detector.Detector`` has these)."""

    arch: str
    weights_sha256: str
    tap_channels: int


@dataclass(frozen=True)
class EncoderMeta:
    """Everything needed to rebuild an encoder and check it against a detector."""

    detector_arch: str
    detector_sha256: str
    features: str  # FeatureSpec.name, e.g. "spp" or "spp+s8+pixels"
    tap_channels: dict[str, int]  # stride (as text) -> channels, in spec order
    roi_size: int = ROI_SIZE
    embed_dim: int = 128
    width: int = 64
    hidden: int = 256
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    arch: str = "conv"  # "conv": RoiEncoder; "mix": MixEncoder (pooled input + colour histogram + learned)
    blocks: tuple[str, ...] = ()  # MixEncoder blocks, e.g. ("raw", "color", "learned")
    hist_bins: tuple[int, ...] = HIST_BINS
    color_stripes: int = 2

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise WeightsError(
                f"encoder architecture {self.arch!r} is unknown to this build (known: {ARCHS})"
            )
        object.__setattr__(self, "blocks", tuple(str(b) for b in self.blocks))
        object.__setattr__(self, "hist_bins", tuple(int(b) for b in self.hist_bins))
        if self.arch == "mix":
            if not self.blocks or set(self.blocks) - set(BLOCKS):
                raise WeightsError(f"encoder metadata: blocks {self.blocks} must be a subset of {BLOCKS}")
            if "color" in self.blocks and "pixels" not in self.features:
                raise WeightsError("encoder metadata: the color block needs the pixels tap")
        spec = parse_feature_spec(self.features)
        if sorted(int(k) for k in self.tap_channels) != sorted(spec.strides):
            raise WeightsError(
                f"encoder metadata: tap_channels {self.tap_channels} do not match {self.features}"
            )
        ordered = {str(s): int(self.tap_channels[str(s)]) for s in spec.strides}
        object.__setattr__(self, "tap_channels", ordered)
        if self.roi_size != ROI_SIZE:
            raise WeightsError(f"encoder metadata: ROI size {self.roi_size}, this build uses {ROI_SIZE}")

    @property
    def spec(self) -> FeatureSpec:
        return parse_feature_spec(self.features)

    @property
    def in_channels(self) -> int:
        return sum(int(c) for c in self.tap_channels.values())

    @property
    def inputs(self) -> str:
        """What the encoder reads, for messages: e.g. ``spp+s8+pixels (raw+color+learned)``."""
        return self.features + (f" ({'+'.join(self.blocks)})" if self.arch == "mix" else "")

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EncoderMeta:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"encoder metadata is not valid JSON: {exc}") from exc
        except RecursionError:
            raise WeightsError("encoder metadata JSON is nested too deeply") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise WeightsError("not a roitrack encoder checkpoint (metadata format missing)")
        if d.get("version") not in READABLE_VERSIONS:
            raise WeightsError(
                f"encoder checkpoint version {d.get('version')} is not supported (want one of {READABLE_VERSIONS})"
            )
        d.pop("format")
        d.pop("version")
        try:
            return cls(**d)
        except (TypeError, ValueError, AttributeError) as exc:
            raise WeightsError(f"encoder metadata has unexpected fields: {exc}") from exc

    def check_detector(self, detector: DetectorInfo) -> None:
        """Raise ``WeightsError`` unless ``detector`` is the one this encoder was trained on."""
        problems = []
        if detector.arch != self.detector_arch:
            problems.append(f"arch {detector.arch!r} != {self.detector_arch!r}")
        if detector.weights_sha256 != self.detector_sha256:
            problems.append(f"weights sha256 {detector.weights_sha256[:12]}… != {self.detector_sha256[:12]}…")
        if int(detector.tap_channels) != int(self.tap_channels["32"]):
            problems.append(f"tap channels {detector.tap_channels} != {self.tap_channels['32']}")
        if problems:
            raise WeightsError("encoder was trained on another detector: " + "; ".join(problems))


Encoder = RoiEncoder | MixEncoder


def build_encoder(meta: EncoderMeta) -> Encoder:
    """A fresh (untrained) encoder of ``meta``'s architecture. ``meta.embed_dim`` is the learned head's size."""
    if meta.arch == "mix":
        taps = [(int(s), int(c)) for s, c in meta.tap_channels.items()]
        return MixEncoder(
            taps,
            blocks=meta.blocks,
            head_dim=meta.embed_dim,
            width=meta.width,
            hidden=meta.hidden,
            hist_bins=meta.hist_bins,
            color_stripes=meta.color_stripes,
        )
    return RoiEncoder(meta.in_channels, embed_dim=meta.embed_dim, width=meta.width, hidden=meta.hidden)


def save_encoder(path: str | Path, model: Encoder, meta: EncoderMeta) -> None:
    """Write ``model``'s tensors and ``meta`` to ``path`` (.safetensors), atomically."""
    head = model.head_dim if isinstance(model, MixEncoder) else model.embed_dim
    if model.in_channels != meta.in_channels or head != meta.embed_dim:
        raise WeightsError("encoder model and metadata disagree on channels or embedding size")
    if (meta.arch == "mix") != isinstance(model, MixEncoder):
        raise WeightsError(
            f"encoder metadata says arch {meta.arch!r} but the model is {type(model).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: meta.to_json()})
    tmp.replace(path)


def read_meta(path: str | Path) -> EncoderMeta:
    """Read only the metadata of an encoder checkpoint."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"encoder checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
    if META_KEY not in md:
        raise WeightsError(f"{path} has no roitrack encoder metadata")
    return EncoderMeta.from_json(md[META_KEY])


def load_encoder(
    path: str | Path, detector: DetectorInfo | None = None, device: str | torch.device = "cpu"
) -> Encoder:
    """Load an encoder in eval mode (its metadata as ``.meta``); refuse a mismatched ``detector`` (``WeightsError``)."""
    meta = read_meta(path)
    if detector is not None:
        meta.check_detector(detector)
    try:  # sizes from the metadata are checked on the meta device first: nothing allocated for a lying file
        with torch.device("meta"):
            build_encoder(meta)
    except (InvalidInputError, ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"encoder metadata in {path} describes no valid encoder: {exc}") from exc
    model = build_encoder(meta)
    try:
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise WeightsError(
            f"encoder tensors in {path} do not match its metadata ({meta.arch}, reads {meta.inputs}): {exc}"
        ) from exc
    model.meta = meta
    return model.to(device).eval()
