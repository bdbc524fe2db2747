"""The ROI appearance encoder: model, safetensors checkpoints with metadata, and the ``Appearance`` helper."""

from tracker_core.encoder.appearance import Appearance
from tracker_core.encoder.checkpoint import (
    Encoder,
    EncoderMeta,
    build_encoder,
    load_encoder,
    read_meta,
    save_encoder,
)
from tracker_core.encoder.mix import BLOCKS, MixEncoder
from tracker_core.encoder.model import MAX_PARAMS, RoiEncoder

__all__ = [
    "BLOCKS",
    "MAX_PARAMS",
    "Appearance",
    "Encoder",
    "EncoderMeta",
    "MixEncoder",
    "RoiEncoder",
    "build_encoder",
    "load_encoder",
    "read_meta",
    "save_encoder",
]
