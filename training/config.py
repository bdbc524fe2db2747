"""``TrainConfig``: every stage-2 hyper-parameter in one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tracker_core.errors import ConfigError
from tracker_core.features import parse_feature_spec


@dataclass(frozen=True)
class TrainConfig:
    """Defaults give a useful encoder on a 400-frame sequence in well under 15 minutes on 2 CPU cores."""

    features: str = "spp"  # spp | spp+s16 | spp+s8 | spp+pixels | spp+s8+pixels ...
    input_h: int = 640
    input_w: int = 640
    epochs: int = 12
    batch_frames: int = 16  # anchor frames per step and rank
    max_rois: int = 384  # cap of ROIs per step (each gives 2 views)
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.1
    min_lr_frac: float = 0.02
    temperature: float = 0.1
    min_score: float = 0.5  # detections linked into tracklets
    tracklet_len: int = 40  # frames per tracklet piece
    partner_gap: int = 20  # frames between an anchor and its partner frame
    jitter: float = 0.08
    noise: float = 0.1
    drop: float = 0.1
    embed_dim: int = 128
    width: int = 64
    hidden: int = 256
    seed: int = 0
    val_gap: int = 50
    val_stride: int = 10

    def __post_init__(self) -> None:
        parse_feature_spec(self.features)
        pos_int = (
            "input_h",
            "input_w",
            "epochs",
            "batch_frames",
            "max_rois",
            "tracklet_len",
            "embed_dim",
            "width",
        )
        for name in pos_int:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train config: {name} must be >= 1")
        if self.input_h % 32 or self.input_w % 32:
            raise ConfigError("train config: input size must be a multiple of 32")
        if not (self.lr > 0 and self.temperature > 0 and 0 <= self.warmup_frac < 1):
            raise ConfigError("train config: lr and temperature must be > 0, warmup_frac in [0,1)")
        for name in ("jitter", "noise", "drop", "min_score"):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise ConfigError(f"train config: {name} must be in [0,1]")
        if self.partner_gap < 0:
            raise ConfigError("train config: partner_gap must be >= 0")

    @property
    def size(self) -> tuple[int, int]:
        return (self.input_h, self.input_w)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"train config: unknown keys {sorted(unknown)}")
        return cls(**d)
