"""``Appearance``: detector feature maps + per-frame boxes -> ``[N,128]`` float32 embeddings (numpy).

Used by the server and ``roitrack eval-mot``. It owns the encoder and its :class:`FeatureSpec`, so callers only
hand over what the detector produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from tracker_core.encoder.checkpoint import DetectorInfo, Encoder, EncoderMeta, load_encoder
from tracker_core.errors import WeightsError
from tracker_core.features import PIXEL_STRIDE, FeatureSpec, RoiFeatureExtractor
from tracker_core.letterbox import LetterboxTransform


class Appearance:
    """Embed detections with a trained :class:`RoiEncoder`.

    ``embed(taps, boxes, transforms, x=None)``:
      - ``taps``: stride -> ``[B,C_s,H/s,W/s]`` maps from ``Detector.forward_taps`` (``{32: tap}`` is enough for
        the default ``spp`` spec; ``forward_raw``'s tap can be passed as ``{32: tap}``);
      - ``boxes``: ``B`` arrays ``[Ni,4]`` xyxy original-frame px; ``transforms``: their letterbox transforms;
      - ``x``: the letterboxed input ``[B,3,H,W]`` in [0,1], needed only when the spec reads ``pixels``.
    Returns ``[sum Ni, embed_dim]`` float32, unit L2 norm, rows in frame then box order.
    """

    def __init__(self, encoder: Encoder, spec: FeatureSpec, tap_channels: Mapping[int, int] | None = None):
        self.encoder = encoder.eval()
        self.spec = spec
        self.extractor = RoiFeatureExtractor(spec)
        self.tap_channels = dict(tap_channels) if tap_channels is not None else None
        self.device = next(encoder.parameters()).device

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, detector: DetectorInfo | None = None, device: str | torch.device = "cpu"
    ) -> Appearance:
        """Load an encoder checkpoint, refusing one trained on another detector."""
        enc = load_encoder(path, detector=detector, device=device)
        meta: EncoderMeta = enc.meta
        return cls(enc, meta.spec, {int(k): int(v) for k, v in meta.tap_channels.items()})

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def needs_pixels(self) -> bool:
        return PIXEL_STRIDE in self.spec.strides

    @property
    def detector_strides(self) -> tuple[int, ...]:
        """The detector maps this encoder reads (pass them in ``taps``)."""
        return self.spec.detector_strides

    def features(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
        x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The encoder's input ``[N, C, 10, 10]`` for these boxes (float32, on the encoder's device)."""
        maps = {s: taps[s] for s in self.spec.detector_strides if s in taps}
        if self.needs_pixels:
            if x is None:
                raise WeightsError(f"encoder reads {self.spec.name}: pass the letterboxed input x")
            maps[PIXEL_STRIDE] = x
        if self.tap_channels is not None:
            for s, t in maps.items():
                if s in self.tap_channels and s != PIXEL_STRIDE and t.shape[1] != self.tap_channels[s]:
                    raise WeightsError(
                        f"stride-{s} map has {t.shape[1]} channels; the encoder was trained on {self.tap_channels[s]}"
                    )
        maps = {s: t.to(self.device) for s, t in maps.items()}
        return self.extractor(maps, boxes, transforms)

    @torch.no_grad()
    def embed(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
        x: torch.Tensor | None = None,
    ) -> np.ndarray:
        feats = self.features(taps, boxes, transforms, x)
        if feats.shape[0] == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return self.encoder(feats).float().cpu().numpy().astype(np.float32, copy=False)
