"""Held-out detection scores during training: letterbox as served, forward, NMS, VOC-style AP (NumPy).

The held-out frames are letterboxed once to ``size x size`` (the server's and eval-mot's input) and kept in
memory; each evaluation runs the network in eval mode (the EMA weights) and the project's own post-processing
(:func:`tracker_core.detector.postprocess.postprocess`: confidence 0.001 for AP, class-aware NMS at IoU 0.45 as
served), then :func:`tracker_core.evaluation.det_metrics.voc_scores` against the scored boxes, honouring the
ignore regions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from tracker_core.detector.model import YoloNet
from tracker_core.detector.postprocess import postprocess
from tracker_core.evaluation.det_metrics import DetScores, FrameDets, FrameTruth, voc_scores_by_class
from tracker_core.evaluation.det_truth import LabelledImage, read_rgb
from tracker_core.letterbox import LetterboxTransform, letterbox

AP_CONF = 0.001
NMS_IOU = 0.45


class HoldoutSet:
    """Held-out images letterboxed to ``size x size`` (uint8, in memory) with their ground truth."""

    def __init__(self, items: list[LabelledImage], size: int) -> None:
        self.size = size
        self.images: list[np.ndarray] = []
        self.transforms: list[LetterboxTransform] = []
        self.truth: list[FrameTruth] = []
        self.classes: list[np.ndarray] = []
        for it in items:
            img, t = letterbox(read_rgb(it.image), (size, size))
            self.images.append(img)
            self.transforms.append(t)
            self.truth.append(FrameTruth(it.boxes, it.ignore, it.classes))
        self.num_boxes = int(sum(len(t.boxes) for t in self.truth))

    def __len__(self) -> int:
        return len(self.images)


@torch.no_grad()
def predict(
    net: YoloNet,
    data: HoldoutSet,
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
    conf: float = AP_CONF,
    iou: float = NMS_IOU,
    batch: int = 8,
    channels_last: bool = False,
) -> list[FrameDets]:
    """Detections (original-frame px) of every held-out image."""
    was = net.training
    net.eval()
    device = next(net.parameters()).device
    out: list[FrameDets] = []
    try:
        for i in range(0, len(data), batch):
            x = torch.from_numpy(np.stack(data.images[i : i + batch])).to(device).permute(0, 3, 1, 2)
            x = x.float().div_(255.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                pred, _ = net(x)
            for boxes, scores, classes in postprocess(
                pred.float(), data.transforms[i : i + batch], conf, iou
            ):
                out.append(FrameDets(boxes, scores, classes))
    finally:
        net.train(was)
    return out


def evaluate(
    net: YoloNet,
    data: HoldoutSet,
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
    operating_conf: float = 0.25,
    channels_last: bool = False,
) -> DetScores:
    """AP50, AP50:95 (VOC-style), precision / recall at ``operating_conf`` on the held-out images."""
    dets = predict(net, data, autocast, channels_last=channels_last)
    return voc_scores_by_class(dets, data.truth, operating_conf)
