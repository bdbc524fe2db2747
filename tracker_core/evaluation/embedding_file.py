"""Per-detection embeddings of a whole sequence in one ``.npz`` file (``eval-mot --save-embeddings`` /
``--embeddings``), so experiments over many tracker configs do not recompute them.

Layout (plain arrays only; read with ``np.load(..., allow_pickle=False)``):

- ``embeddings`` ``[sum Ni, D]`` float32 (L2-normalised, as the tracker gets them), frame after frame;
- ``boxes`` ``[sum Ni, 4]`` float32 xyxy original-frame pixels: the detections they belong to;
- ``counts`` ``[F]`` int64: detections of frame ``1..F`` (frame ``f``'s rows start at ``counts[:f-1].sum()``);
- 0-d string arrays: ``format`` (``roitrack-embeddings/1``), ``kind`` (``reid`` | ``roi``), ``model`` (file
  name), ``model_sha256``, ``detections`` (the det file's path, or ``detector <weights>``), ``detections_sha256``
  (of the det file; empty for detector boxes), ``sequence``, ``score_rule``, ``input_spec`` (JSON; ReID only).

Loaded embeddings are used only for exactly the boxes they were computed for: :func:`check_matches` refuses a
file whose frame count or boxes differ from the detections being tracked.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError
from tracker_core.evaluation.mot_io import FrameDetections

FORMAT = "roitrack-embeddings/1"
META_KEYS = (
    "kind",
    "model",
    "model_sha256",
    "detections",
    "detections_sha256",
    "sequence",
    "score_rule",
    "input_spec",
)


@dataclass(frozen=True)
class EmbeddingFile:
    """A sequence's embeddings: ``embeddings[i]`` ``[Ni,D]`` and ``boxes[i]`` ``[Ni,4]`` of frame ``i + 1``."""

    embeddings: list[NDArray[np.float32]]
    boxes: list[NDArray[np.float32]]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.embeddings[0].shape[1]) if self.embeddings else 0


def save_embeddings(
    path: str | Path,
    frames: Sequence[FrameDetections],
    embeddings: Sequence[NDArray[np.floating]],
    meta: Mapping[str, str],
) -> Path:
    """Write ``embeddings[i]`` (``[Ni,D]``) of ``frames[i]``'s boxes; ``meta``: values for :data:`META_KEYS`."""
    if len(frames) != len(embeddings):
        raise InvalidInputError(f"{len(frames)} frames but {len(embeddings)} embedding arrays")
    dims = {int(e.shape[1]) for e in embeddings if e.ndim == 2 and len(e)}
    if len(dims) > 1:
        raise InvalidInputError(f"embeddings of several dimensions {sorted(dims)} in one sequence")
    dim = dims.pop() if dims else 0
    for i, (f, e) in enumerate(zip(frames, embeddings, strict=True)):
        if len(e) != len(f.boxes):
            raise InvalidInputError(f"frame {i + 1}: {len(f.boxes)} boxes but {len(e)} embeddings")
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise InvalidInputError(f"unknown embedding file metadata {sorted(unknown)}")
    arrays: dict[str, NDArray[np.generic]] = {
        "format": np.array(FORMAT),
        "embeddings": np.concatenate([np.asarray(e, np.float32).reshape(-1, dim) for e in embeddings])
        if embeddings
        else np.zeros((0, dim), np.float32),
        "boxes": np.concatenate([np.asarray(f.boxes, np.float32).reshape(-1, 4) for f in frames])
        if frames
        else np.zeros((0, 4), np.float32),
        "counts": np.array([len(f.boxes) for f in frames], np.int64),
    }
    for k in META_KEYS:
        arrays[k] = np.array(str(meta.get(k, "")))
    out = Path(path)
    if out.suffix != ".npz":
        raise InvalidInputError(f"--save-embeddings: the file name must end in .npz, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out


def load_embeddings(path: str | Path) -> EmbeddingFile:
    """Read a file written by :func:`save_embeddings` (no pickle). ``InvalidInputError`` when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"embeddings file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"{p} is not a readable .npz embeddings file: {exc}") from None
    need = {"format", "embeddings", "boxes", "counts"}
    if not need <= set(data) or str(data["format"]) != FORMAT:
        raise InvalidInputError(
            f"{p} is not a roitrack embeddings file ({FORMAT}: from eval-mot --save-embeddings)"
        )
    emb, boxes, counts = data["embeddings"], data["boxes"], data["counts"]
    ok = (
        emb.ndim == 2
        and emb.dtype == np.float32
        and boxes.ndim == 2
        and boxes.shape[1] == 4
        and boxes.dtype == np.float32
        and counts.ndim == 1
        and counts.dtype.kind in "iu"
        and (counts >= 0).all()
        and int(counts.sum()) == len(emb) == len(boxes)
    )
    if not ok:
        raise InvalidInputError(f"{p}: inconsistent arrays (embeddings {emb.shape}, boxes {boxes.shape})")
    if not np.isfinite(emb).all():
        raise InvalidInputError(f"{p}: embeddings contain NaN or infinite values")
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    meta = {k: str(data[k]) for k in META_KEYS if k in data}
    return EmbeddingFile(
        [emb[bounds[i] : bounds[i + 1]] for i in range(len(counts))],
        [boxes[bounds[i] : bounds[i + 1]] for i in range(len(counts))],
        meta,
    )


def check_matches(ef: EmbeddingFile, frames: Sequence[FrameDetections], source: str, what: str) -> None:
    """``InvalidInputError`` unless ``ef`` holds exactly ``frames``' boxes (same frames, same boxes, same order).
    ``source``: the embeddings file; ``what``: the detections being tracked (for the message)."""
    made_from = ef.meta.get("detections") or "unknown detections"
    if len(ef.boxes) != len(frames):
        raise InvalidInputError(
            f"embeddings {source} hold {len(ef.boxes)} frames, but {what} has {len(frames)} (they were computed "
            f"for {made_from})"
        )
    for i, (b, f) in enumerate(zip(ef.boxes, frames, strict=True)):
        if b.shape != f.boxes.shape or not np.array_equal(b, np.asarray(f.boxes, np.float32)):
            raise InvalidInputError(
                f"embeddings {source} do not match {what}: frame {i + 1} has {len(b)} embedded boxes, the "
                f"detections {len(f.boxes)} (or other coordinates). They were computed for {made_from} "
                f"(score rule {ef.meta.get('score_rule') or '?'}); use the same --det, --score-scale, "
                "--score-clip and --min-score"
            )
