"""Detections and/or appearance embeddings for a MOTChallenge sequence computed from its frames.

Used by ``roitrack eval-mot`` when ``--det`` is omitted (the detector finds the objects) or ``--appearance on``
(ROI embeddings of each detection from the detector's feature taps). Imports torch lazily through the detector
and encoder packages; ``tracker_core.tracking`` itself never sees torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import FrameDetections, SeqInfo


def _read_rgb(path: Path) -> NDArray[np.uint8]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidInputError(f"cannot decode image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def frames_from_images(
    seq_dir: str | Path,
    info: SeqInfo,
    weights: str | Path,
    encoder: str | Path | None = None,
    detections: Sequence[FrameDetections] | None = None,
    device: str = "cpu",
    size: int = 640,
    conf: float = 0.25,
    classes: Sequence[int] | None = (0,),
    max_frames: int | None = None,
    inference: Any = None,
    report: dict[str, Any] | None = None,
    fuse: bool = True,
) -> tuple[list[FrameDetections], list[NDArray[np.float32]] | None]:
    """Run the detector over ``seq_dir/img1`` frame by frame.

    With ``detections`` given, those boxes are kept (only the feature taps are used, for embeddings); otherwise
    the detector's own detections (``classes``: COCO 0 = person) are returned. With ``encoder``, each detection's
    embedding ``[N,D]`` is returned too (else ``None``). ``inference``: ``tracker_core.inference.InferenceOptions``
    (default torch fp32, the reference); the backend that ran is written to ``report["inference"]``. The models
    run on a worker thread, as the server runs them (torch from a process's main thread crawls on a loaded CPU).
    ``fuse``: the detector fused for inference, as ``roitrack serve`` runs it by default, so both paths give the
    same numbers; ``False`` (torch fp32 only) runs the network as loaded, the reference for parity checks.
    """
    from tracker_core.detector import load_detector
    from tracker_core.encoder import Appearance
    from tracker_core.inference import REFERENCE, InferenceOptions, build_backend

    img_dir = Path(seq_dir) / info.im_dir
    if not img_dir.is_dir():
        raise NotFoundError(f"{img_dir} not found: the sequence has no frames")
    options = inference or InferenceOptions(backend="torch", precision="fp32")
    # Every backend but torch fp32 compiles the fused network; torch fp32 runs unfused only when asked.
    fuse = fuse or (options.backend, options.precision) != REFERENCE
    detector = load_detector(weights, device=device, fuse=fuse)
    appearance = Appearance.from_checkpoint(encoder, detector=detector, device=device) if encoder else None
    backend = build_backend(detector, appearance, options, input_size=(size, size))
    if report is not None:
        report["inference"] = backend.label
        report["inference_selection"] = backend.selection
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-evalmot-model") as pool:
        return pool.submit(
            _run_frames,
            img_dir,
            info,
            detector,
            appearance,
            backend,
            detections,
            size,
            conf,
            classes,
            max_frames,
        ).result()


def _run_frames(
    img_dir: Path,
    info: SeqInfo,
    detector: Any,
    appearance: Any,
    backend: Any,
    detections: Sequence[FrameDetections] | None,
    size: int,
    conf: float,
    classes: Sequence[int] | None,
    max_frames: int | None,
) -> tuple[list[FrameDetections], list[NDArray[np.float32]] | None]:
    n = info.seq_length if max_frames is None else min(info.seq_length, max_frames)
    out_frames: list[FrameDetections] = []
    out_emb: list[NDArray[np.float32]] = []
    for i in range(n):
        path = img_dir / f"{i + 1:06d}{info.im_ext}"
        if not path.is_file():
            raise NotFoundError(f"frame {path} not found")
        x, transforms = detector.preprocess([_read_rgb(path)], (size, size))
        taps, pred = backend.forward_taps(x)
        if detections is not None:
            fd = detections[i]
        else:
            boxes, scores, _ = detector.postprocess(pred, transforms, conf=conf, classes=classes)[0]
            fd = FrameDetections(boxes.astype(np.float32), scores.astype(np.float32))
        out_frames.append(fd)
        if appearance is not None:
            emb = backend.embed(taps, [fd.boxes], transforms, x if appearance.needs_pixels else None)
            out_emb.append(emb.astype(np.float32))
    return out_frames, (out_emb if appearance is not None else None)


def reid_embeddings(
    seq_dir: str | Path,
    info: SeqInfo,
    frames: Sequence[FrameDetections],
    model: object,
) -> list[NDArray[np.float32]]:
    """Each frame's ``[N,D]`` ReID embeddings of ``frames[i]``'s boxes from ``seq_dir/img1`` (``model``: a
    ``tracker_core.reid.ReidModel``), frame by frame: the crops the server cuts from the same JPEG bytes."""
    img_dir = Path(seq_dir) / info.im_dir
    if not img_dir.is_dir():
        raise NotFoundError(f"{img_dir} not found: the sequence has no frames (ReID embeddings need them)")
    out: list[NDArray[np.float32]] = []
    for i, fd in enumerate(frames):
        path = img_dir / f"{i + 1:06d}{info.im_ext}"
        if not path.is_file():
            raise NotFoundError(f"frame {path} not found")
        out.append(model.embed_frame(_read_rgb(path), fd.boxes))  # type: ignore[attr-defined]
    return out


def color_model_name() -> str:
    """What an embeddings file of colour histograms records as its ``model``: ``hsv_histogram 8x3x3`` (bins)."""
    from tracker_core.features import HIST_BINS

    return "hsv_histogram " + "x".join(str(b) for b in HIST_BINS)


def color_embeddings(
    seq_dir: str | Path,
    info: SeqInfo,
    frames: Sequence[FrameDetections],
) -> list[NDArray[np.float32]]:
    """Each frame's ``[N,72]`` colour histograms of ``frames[i]``'s boxes from ``seq_dir/img1``: the joint HSV
    histogram (8x3x3 bins, square-rooted, so unit length) of the pixels inside each box in the original frame
    (:func:`tracker_core.features.box_histograms`: ``roitrack val``'s colour baseline and the encoder's colour
    block). A no-model appearance baseline; a box with no pixel inside the frame gets zeros."""
    from tracker_core.features import box_histograms

    img_dir = Path(seq_dir) / info.im_dir
    if not img_dir.is_dir():
        raise NotFoundError(f"{img_dir} not found: the sequence has no frames (colour histograms need them)")
    out: list[NDArray[np.float32]] = []
    for i, fd in enumerate(frames):
        path = img_dir / f"{i + 1:06d}{info.im_ext}"
        if not path.is_file():
            raise NotFoundError(f"frame {path} not found")
        out.append(box_histograms(_read_rgb(path), fd.boxes).numpy().astype(np.float32))
    return out
