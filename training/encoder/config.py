"""``TrainConfig``: every stage-2 hyper-parameter in one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tracker_core.errors import ConfigError
from tracker_core.features import parse_feature_spec


def input_size_for(h: int, w: int, long_side: int = 640, rect: bool = True) -> tuple[int, int]:
    """``(long_side, long_side)``, or with ``rect`` the frame's aspect at the same scale rounded up to
    multiples of 32 (768x576 -> 640x480): identical features at a quarter less compute than the square."""
    if not rect:
        return (long_side, long_side)
    r = long_side / max(h, w)
    return (int(-(-round(h * r) // 32) * 32), int(-(-round(w * r) // 32) * 32))


@dataclass(frozen=True)
class TrainConfig:
    """Defaults give a useful encoder on a 400-frame sequence in well under 15 minutes on 2 CPU cores."""

    features: str = "spp+s8+pixels2"  # spp | spp+s16 | spp+s8 | spp+pixels | spp+s8+pixels ...
    arch: str = (
        "mix"  # mix: MixEncoder (pooled input + colour histogram + learned residual); conv: RoiEncoder
    )
    blocks: str = "raw+color+learned"  # MixEncoder blocks (color needs the pixels tap)
    input_size: int = 640  # long side of the detector input (the server's --input-size)
    rect: bool = (
        False  # True: letterbox to the frame's aspect (cheaper) - but the server letterboxes to a square
    )
    frame_step: int = 2  # use every n-th frame: stage 1 cost / n (7 fps PETS: no loss measured at 2)
    epochs: int = 8
    holdout: float = 0.2  # last part of every source kept out of training, for label-free validation
    patience: int = 2  # stop after this many epochs without a better held-out score (0: never stop early)
    holdout_gaps: tuple[int, ...] = (
        10,
        20,
        30,
    )  # frames between gallery and query in the held-out validation
    queue: int = 1024  # memory queue of past embeddings used as extra negatives (0: off)
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
    illumination: float = 0.2  # std of the log brightness gain of the pixels (per ROI; 1/4 of it per channel)
    blur: float = 0.3  # probability that a ROI's pixels are blurred
    occlusion: float = 0.3  # probability that a ROI gets a side or bottom block of another ROI pasted in
    embed_dim: int = 128
    width: int = 64
    hidden: int = 256
    seed: int = 0
    val_gap: int = 50
    val_stride: int = 10

    def __post_init__(self) -> None:
        spec = parse_feature_spec(self.features)
        object.__setattr__(self, "holdout_gaps", tuple(int(g) for g in self.holdout_gaps))
        if self.arch not in ("mix", "conv"):
            raise ConfigError(f"train config: arch must be mix or conv, got {self.arch!r}")
        if self.arch == "mix":
            blocks = [b for b in self.blocks.split("+") if b]
            if not blocks or set(blocks) - {"raw", "color", "learned"}:
                raise ConfigError(
                    f"train config: blocks {self.blocks!r} must be a +-list of raw, color, learned"
                )
            if "color" in blocks and 1 not in spec.strides:
                raise ConfigError(
                    "train config: the color block needs the pixels tap (--features ...+pixels)"
                )
        if not 0 <= self.holdout < 1:
            raise ConfigError("train config: holdout must be in [0,1)")
        if self.patience < 0 or self.queue < 0 or any(g < 1 for g in self.holdout_gaps):
            raise ConfigError("train config: patience and queue must be >= 0, holdout gaps >= 1")
        pos_int = (
            "input_size",
            "frame_step",
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
        if self.input_size % 32:
            raise ConfigError("train config: input size must be a multiple of 32")
        if not (self.lr > 0 and self.temperature > 0 and 0 <= self.warmup_frac < 1):
            raise ConfigError("train config: lr and temperature must be > 0, warmup_frac in [0,1)")
        for name in ("jitter", "noise", "drop", "min_score", "illumination", "blur", "occlusion"):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise ConfigError(f"train config: {name} must be in [0,1]")
        if self.partner_gap < 0:
            raise ConfigError("train config: partner_gap must be >= 0")

    def size_for(self, h: int, w: int) -> tuple[int, int]:
        """Detector input ``(H, W)`` for an ``h x w`` frame: see :func:`input_size_for`."""
        return input_size_for(h, w, self.input_size, self.rect)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"train config: unknown keys {sorted(unknown)}")
        d = dict(d)
        if "holdout_gaps" in d:
            d["holdout_gaps"] = tuple(d["holdout_gaps"])
        return cls(**d)
