"""Detection ground truth: MOTChallenge ``gt.txt`` (with ignore regions) and YOLO-format datasets.

MOTChallenge rows that are not scored become **ignore regions**: a detection there is neither right nor wrong,
and a detector in training is not taught that they are background. Which rows are scored depends on the file's
layout:

- 9 columns (MOT16/17/20: ``frame,id,left,top,width,height,flag,class,visibility``): ``flag == 1``, ``class`` in
  ``classes`` (1 = pedestrian) and ``visibility >= min_visibility``; every other row is an ignore region.
- 10 columns (MOT15, e.g. PETS09-S2L1: ``frame,id,left,top,width,height,flag,X,Y,Z``): columns 8-10 are world
  coordinates, **not** class and visibility; only ``flag`` decides (``flag == 0``: ignore).
- ``gt_format`` (``"mot17"`` / ``"mot15"``) overrides the guess from the column count.

YOLO-format datasets (the ecosystem's convention): ``data.yaml`` with ``path`` (optional root), ``train`` /
``val`` / ``test`` (an image folder, a text file listing images, or a list of either, relative to ``path`` or to
the yaml's folder) and ``names`` (a list, or a ``{index: name}`` mapping); each ``.../images/.../x.jpg`` has its
labels in ``.../labels/.../x.txt``, one ``class cx cy w h`` row per object, normalised to the image. A missing
label file means no objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import read_gt, read_seqinfo

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
GT_FORMATS = ("auto", "mot15", "mot17")


def _empty() -> NDArray[np.float32]:
    return np.zeros((0, 4), np.float32)


@dataclass(frozen=True)
class LabelledImage:
    """One labelled image: ``boxes`` ``[N,4]`` xyxy original px, ``classes`` ``[N]`` int64 (dataset class ids),
    ``ignore`` ``[M,4]`` xyxy regions that are neither objects nor background."""

    image: Path
    boxes: NDArray[np.float32]
    classes: NDArray[np.int64]
    ignore: NDArray[np.float32] = field(default_factory=_empty)
    frame: int | None = None  # 1-based frame number in a MOTChallenge sequence


def _xyxy(rows: NDArray[np.float64]) -> NDArray[np.float32]:
    return np.stack(
        [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1
    ).astype(np.float32)


def scored_rows(
    gt: NDArray[np.float64],
    gt_format: str = "auto",
    classes: tuple[int, ...] = (1,),
    min_visibility: float = 0.0,
) -> NDArray[np.bool_]:
    """Which rows of a ``gt.txt`` array are scored objects (the rest are ignore regions); see the module doc."""
    if gt_format not in GT_FORMATS:
        raise InvalidInputError(f"gt format must be one of {', '.join(GT_FORMATS)}, got {gt_format!r}")
    n, cols = gt.shape
    if n == 0:
        return np.zeros(0, bool)
    flag = gt[:, 6] if cols >= 7 else np.ones(n)
    fmt = gt_format if gt_format != "auto" else ("mot17" if cols == 9 else "mot15")
    keep = flag >= 1
    if fmt == "mot17":
        if cols < 9:
            raise InvalidInputError(
                f"gt format mot17 needs 9 columns (class, visibility), the file has {cols}"
            )
        keep &= np.isin(gt[:, 7].astype(np.int64), np.asarray(classes, np.int64))
        keep &= gt[:, 8] >= min_visibility
    keep &= (gt[:, 4] > 0) & (gt[:, 5] > 0)
    return keep


def read_mot_truth(
    seq: str | Path,
    gt_format: str = "auto",
    classes: tuple[int, ...] = (1,),
    min_visibility: float = 0.0,
    label: int = 0,
) -> list[LabelledImage]:
    """Every frame of a MOTChallenge sequence (``img1/`` + ``gt/gt.txt``), in order, with its scored boxes (all of
    class ``label``) and ignore regions."""
    seq = Path(seq)
    info = read_seqinfo(seq)
    gt_path = seq / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise NotFoundError(f"{gt_path} not found: detection training and eval-det need ground truth")
    gt = read_gt(gt_path)
    scored = scored_rows(gt, gt_format, classes, min_visibility)
    frames = gt[:, 0].astype(np.int64) if len(gt) else np.zeros(0, np.int64)
    img_dir = seq / info.im_dir
    if not img_dir.is_dir():
        raise NotFoundError(f"{img_dir} not found: the sequence has no frames")
    out = []
    for f in range(1, info.seq_length + 1):
        rows = frames == f
        pos, ign = gt[rows & scored], gt[rows & ~scored & (gt[:, 4] > 0) & (gt[:, 5] > 0)]
        out.append(
            LabelledImage(
                image=img_dir / f"{f:06d}{info.im_ext}",
                boxes=_xyxy(pos),
                classes=np.full(len(pos), label, np.int64),
                ignore=_xyxy(ign),
                frame=f,
            )
        )
    return out


@dataclass(frozen=True)
class YoloData:
    """A parsed ``data.yaml``: class ``names`` and the image list of each split present."""

    root: Path
    names: list[str]
    splits: dict[str, list[Path]]


def _names(raw: object, where: Path) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict):
        try:
            idx = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{where}: names keys must be class indices") from None
        if idx != list(range(len(idx))):
            raise InvalidInputError(f"{where}: names must cover classes 0..{len(idx) - 1} without gaps")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in idx]  # type: ignore[index]
    raise InvalidInputError(f"{where}: names must be a list or an index -> name mapping")


def _images_of(entry: str, root: Path, where: Path) -> list[Path]:
    p = Path(entry)
    p = p if p.is_absolute() else root / p
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
    if p.is_file() and p.suffix == ".txt":
        out = []
        for line in p.read_text().splitlines():
            line = line.strip()
            if line:
                q = Path(line)
                out.append(q if q.is_absolute() else (p.parent / q if not (root / q).exists() else root / q))
        return out
    raise NotFoundError(f"{where}: split entry {entry!r} is neither an image folder nor a .txt list ({p})")


def read_yolo_data(data_yaml: str | Path) -> YoloData:
    """Parse a YOLO ``data.yaml`` (see the module doc)."""
    import yaml

    path = Path(data_yaml)
    if not path.is_file():
        raise NotFoundError(f"{path} not found")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(d, dict) or "names" not in d:
        raise InvalidInputError(f"{path}: a YOLO data.yaml needs at least names and train")
    names = _names(d["names"], path)
    if "nc" in d and int(d["nc"]) != len(names):
        raise InvalidInputError(f"{path}: nc={d['nc']} but {len(names)} names")
    root = Path(str(d.get("path") or path.parent))
    root = root if root.is_absolute() else path.parent / root
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val", "test"):
        entry = d.get(split)
        if not entry:
            continue
        entries = entry if isinstance(entry, list) else [entry]
        splits[split] = [img for e in entries for img in _images_of(str(e), root, path)]
    if not splits.get("train"):
        raise InvalidInputError(f"{path}: no training images (train: ...)")
    return YoloData(root=root, names=names, splits=splits)


def label_path(image: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (the last ``images`` folder of the path)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def read_yolo_labels(image: Path, width: int, height: int, nc: int) -> LabelledImage:
    """The labels of ``image`` (``width x height`` px) as xyxy pixels; rows with a class outside ``0..nc-1`` or a
    box outside the image are an error naming the file."""
    lp = label_path(image)
    if not lp.is_file():
        return LabelledImage(image, _empty(), np.zeros(0, np.int64))
    try:
        rows = np.loadtxt(lp, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InvalidInputError(f"{lp}: not a YOLO label file: {exc}") from None
    if rows.size == 0:
        return LabelledImage(image, _empty(), np.zeros(0, np.int64))
    if rows.shape[1] < 5:
        raise InvalidInputError(f"{lp}: want 'class cx cy w h' rows, got {rows.shape[1]} columns")
    cls = rows[:, 0].astype(np.int64)
    if (cls < 0).any() or (cls >= nc).any() or not np.isfinite(rows[:, :5]).all():
        raise InvalidInputError(f"{lp}: class ids must be 0..{nc - 1} and values finite")
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return LabelledImage(image, boxes[ok], cls[ok])


def read_rgb(path: Path) -> NDArray[np.uint8]:
    """An image file as ``HxWx3`` uint8 RGB; :class:`InvalidInputError` when it does not decode."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"cannot decode image {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header when possible."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InvalidInputError(f"cannot decode image {path}")
    return int(img.shape[1]), int(img.shape[0])


def read_yolo_split(data: YoloData, split: str) -> list[LabelledImage]:
    """Every image of ``split`` with its labels."""
    if split not in data.splits:
        raise InvalidInputError(f"the dataset has no {split!r} split (it has {', '.join(data.splits)})")
    out = []
    for img in data.splits[split]:
        w, h = image_size(img)
        out.append(read_yolo_labels(img, w, h, len(data.names)))
    return out
