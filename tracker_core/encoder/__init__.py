"""The ROI appearance encoder: model, safetensors checkpoints with metadata, and the ``Appearance`` helper."""

from tracker_core.encoder.appearance import Appearance
from tracker_core.encoder.checkpoint import EncoderMeta, build_encoder, load_encoder, read_meta, save_encoder
from tracker_core.encoder.model import MAX_PARAMS, RoiEncoder

__all__ = [
    "MAX_PARAMS",
    "Appearance",
    "EncoderMeta",
    "RoiEncoder",
    "build_encoder",
    "load_encoder",
    "read_meta",
    "save_encoder",
]
