"""``DetTrainConfig``: every hyper-parameter of ``roitrack train-detector`` in one frozen, validated dataclass.

Loss gains, HSV / translation / flip strengths, momentum and weight decay are the official
``data/hyp.scratch.tiny.yaml`` values unless a comment says why not. The defaults are sized to train a
yolov7-tiny for one fixed camera from a few hundred labelled frames in under an hour on 2 CPU cores with bf16
(docs/detector.md, "Train for your camera"): such a run makes only some hundreds of optimizer steps, so AdamW
(lr 0.002, no gradient accumulation: the short-schedule choice of later YOLO trainers) replaces the official
SGD with accumulation to 64 images (``--optimizer sgd --lr0 0.01 --set nominal_batch=64
--set warmup_bias_lr=0.1`` gives the official set-up).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tracker_core.detector.architectures import ARCHES
from tracker_core.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
ASSIGNERS = ("ota", "simple")
ANCHOR_MODES = ("auto", "fit", "keep")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class DetTrainConfig:
    arch: str = "yolov7-tiny"
    img_size: int = 640  # long side of the training input; validation letterboxes to img_size^2 as served
    rect: bool = True  # train on the frames' aspect (768x576 -> 480x640) instead of img_size^2
    epochs: int = 150
    batch: int = 8  # images per step, all processes together (as the official --batch-size)
    nominal_batch: int = 8  # gradients are accumulated to about this many images per optimizer step
    time_budget_min: float = 50.0  # the schedule also ends when this much wall time is spent (0: no budget)
    optimizer: str = "adamw"
    lr0: float = 0.002
    lrf: float = 0.01  # final learning rate = lr0 * lrf (cosine one-cycle)
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.0  # the biases' LR falls from this to lr0 in the warm-up (official SGD: 0.1)
    box: float = 0.05
    cls: float = 0.5
    obj: float = 1.0
    anchor_t: float = 4.0
    assigner: str = "ota"
    anchors: str = "auto"  # auto: fit to the data unless the starting anchors already fit; fit; keep
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.3  # one fixed camera: objects keep their size (official 0.5)
    shear: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    close_mosaic: float = 0.1  # the last part of the schedule without mosaic (whole frames, as served)
    ema_decay: float = 0.9999  # EMA weights: decay * (1 - exp(-updates / ema_tau))
    ema_tau: float = 300.0  # official 2000 updates; a run here makes some hundreds
    holdout: float = (
        0.2  # last part of every sequence (or a YOLO dataset's val split) held out for early stopping
    )
    patience: int = 30  # epochs without a better held-out fitness before stopping (0: never)
    eval_every: int = 5  # epochs between held-out evaluations (and always at the end)
    min_visibility: float = 0.25  # MOT16/17 rows less visible than this become ignore regions
    amp: str = "auto"  # auto: fp16 on CUDA, bf16 on CPUs with AMX, else fp32
    channels_last: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ConfigError(f"train-detector: arch must be one of {', '.join(ARCHES)}, got {self.arch!r}")
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("assigner", ASSIGNERS),
            ("anchors", ANCHOR_MODES),
            ("amp", AMP_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train-detector: {name} must be one of {', '.join(allowed)}")
        if self.img_size < 64 or self.img_size % 32:
            raise ConfigError("train-detector: img_size must be a multiple of 32, at least 64")
        for name in ("epochs", "batch", "nominal_batch", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train-detector: {name} must be >= 1")
        if self.patience < 0 or self.time_budget_min < 0:
            raise ConfigError("train-detector: patience and time_budget_min must be >= 0")
        if not (self.lr0 > 0 and 0 < self.lrf <= 1 and 0 <= self.momentum < 1 and self.weight_decay >= 0):
            raise ConfigError(
                "train-detector: need lr0 > 0, 0 < lrf <= 1, 0 <= momentum < 1, weight_decay >= 0"
            )
        if self.warmup_epochs < 0 or not 0 <= self.warmup_momentum < 1:
            raise ConfigError("train-detector: warmup_epochs >= 0 and warmup_momentum in [0, 1)")
        for name in ("box", "cls", "obj", "warmup_bias_lr", "translate", "shear", "degrees"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"train-detector: {name} must be >= 0")
        if self.anchor_t <= 1:
            raise ConfigError("train-detector: anchor_t must be > 1")
        for name in (
            "hsv_h",
            "hsv_s",
            "hsv_v",
            "fliplr",
            "mosaic",
            "scale",
            "min_visibility",
            "close_mosaic",
        ):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise ConfigError(f"train-detector: {name} must be in [0, 1]")
        if not 0 <= self.holdout < 1:
            raise ConfigError("train-detector: holdout must be in [0, 1)")
        if not (0 <= self.ema_decay < 1 and self.ema_tau > 0):
            raise ConfigError("train-detector: ema_decay in [0, 1), ema_tau > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetTrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"train-detector config: unknown keys {sorted(unknown)}")
        return cls(**d)
