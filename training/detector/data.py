"""Training data of ``train-detector``: sources, their held-out part, decoded images kept in memory, batches.

A source is a MOTChallenge sequence (a folder with ``img1/`` and ``gt/gt.txt``) or a YOLO dataset (its
``data.yaml``); ``--data`` is repeatable. Class names: a YOLO dataset's ``names`` (all YOLO sources must agree);
MOTChallenge boxes are the class called ``person`` (``["person"]`` when only sequences are given).

Held-out part (``holdout``, the same time split as ``roitrack train``): the last ``holdout`` fraction of every
sequence's frames; a YOLO dataset's ``val`` split when it has one, else the last ``holdout`` fraction of its
training images. Nothing held out is trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.det_truth import (
    LabelledImage,
    read_mot_truth,
    read_rgb,
    read_yolo_data,
    read_yolo_split,
)
from training.detector.augment import AugmentConfig, Resized, Sample, make_sample, resize_long_side

log = logging.getLogger(__name__)

PERSON = "person"
CACHE_LIMIT_BYTES = (
    6 * 1024**3
)  # decoded, resized images kept in memory up to this much; the rest decoded per use


@dataclass(frozen=True)
class SourceData:
    name: str
    kind: str  # "mot" or "yolo"
    train: list[LabelledImage]
    holdout: list[LabelledImage]


@dataclass(frozen=True)
class DetData:
    names: list[str]
    sources: list[SourceData]

    @property
    def train(self) -> list[LabelledImage]:
        return [im for s in self.sources for im in s.train]

    @property
    def holdout(self) -> list[LabelledImage]:
        return [im for s in self.sources for im in s.holdout]


def _tail_split(
    items: list[LabelledImage], holdout: float
) -> tuple[list[LabelledImage], list[LabelledImage]]:
    k = round(len(items) * holdout)
    if holdout <= 0 or k < 1 or len(items) - k < 1:
        return items, []
    return items[: len(items) - k], items[len(items) - k :]


def load_sources(
    paths: list[str], holdout: float, gt_format: str = "auto", min_visibility: float = 0.25
) -> DetData:
    """Read every ``--data`` source (see the module doc) and split off the held-out part."""
    yolo = []
    for p in paths:
        path = Path(p)
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            yolo.append(path)
        elif not path.exists():
            raise NotFoundError(f"--data {p} does not exist")
        elif not (path.is_dir() and (path / "img1").is_dir() and (path / "gt" / "gt.txt").is_file()):
            raise InvalidInputError(
                f"--data {p}: want a MOTChallenge sequence (img1/ + gt/gt.txt) or a YOLO data.yaml"
            )
    names: list[str] | None = None
    sources = []
    for p in paths:
        path = Path(p)
        if path in yolo:
            d = read_yolo_data(path)
            if names is not None and names != d.names:
                raise InvalidInputError(f"{path}: class names {d.names} differ from another source's {names}")
            names = d.names
            items = read_yolo_split(d, "train")
            if holdout > 0 and d.splits.get("val"):
                tr, ho = items, read_yolo_split(d, "val")
            else:
                tr, ho = _tail_split(items, holdout)
            sources.append(SourceData(path.parent.name or path.stem, "yolo", tr, ho))
    names = names or [PERSON]
    if any(Path(p) not in yolo for p in paths) and PERSON not in names:
        raise InvalidInputError(f"MOTChallenge sequences are labelled {PERSON!r}, which is not among {names}")
    for p in paths:
        path = Path(p)
        if path in yolo:
            continue
        items = read_mot_truth(path, gt_format, (1,), min_visibility, label=names.index(PERSON))
        tr, ho = _tail_split(items, holdout)
        sources.append(SourceData(path.name, "mot", tr, ho))
    if not any(s.train for s in sources):
        raise InvalidInputError("no training images in --data")
    return DetData(names=names, sources=sources)


class ImageStore:
    """Training images resized to long side ``size``, kept in memory while they fit ``limit`` bytes."""

    def __init__(self, items: list[LabelledImage], size: int, limit: int = CACHE_LIMIT_BYTES) -> None:
        self.items, self.size, self.limit = items, size, limit
        self._cache: dict[int, Resized] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Resized:
        if i in self._cache:
            return self._cache[i]
        it = self.items[i]
        img, r = resize_long_side(read_rgb(it.image), self.size)
        out = Resized(img, it.classes, it.boxes * np.float32(r), it.ignore * np.float32(r))
        if self._bytes + img.nbytes <= self.limit:
            self._cache[i] = out
            self._bytes += img.nbytes
        return out

    def train_shape(self, rect: bool) -> tuple[int, int]:
        """Training input ``(H, W)``: ``size x size``, or with ``rect`` the most common frame aspect at long side
        ``size``, sides rounded up to multiples of 32."""
        if not rect or not len(self):
            return (self.size, self.size)
        shapes: dict[tuple[int, int], int] = {}
        for i in range(0, len(self), max(1, len(self) // 50)):
            h, w = self.get(i).image.shape[:2]
            key = (-(-h // 32) * 32, -(-w // 32) * 32)
            shapes[key] = shapes.get(key, 0) + 1
        return max(shapes, key=lambda k: shapes[k])

    def label_wh(self) -> NDArray[np.float32]:
        """``[N,2]`` widths and heights of every training box at the training scale (long side ``size``)."""
        whs = [
            r.boxes[:, 2:4] - r.boxes[:, 0:2] for r in (self.get(i) for i in range(len(self))) if len(r.boxes)
        ]
        return np.concatenate(whs).astype(np.float32) if whs else np.zeros((0, 2), np.float32)


@dataclass
class Batch:
    images: torch.Tensor  # [B,3,s,s] float in [0,1]
    targets: torch.Tensor  # [N,6] (image index, class, cx, cy, w, h) input px
    ignore: torch.Tensor  # [M,5] (image index, x1, y1, x2, y2) input px


def collate(samples: list[Sample]) -> Batch:
    imgs = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    tg, ig = [], []
    for k, s in enumerate(samples):
        b = s.boxes
        xywh = np.stack(
            [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1
        )
        tg.append(np.concatenate([np.full((len(b), 1), k), s.classes[:, None], xywh.reshape(-1, 4)], 1))
        ig.append(np.concatenate([np.full((len(s.ignore), 1), k), s.ignore.reshape(-1, 4)], 1))
    return Batch(
        images=imgs.float().div_(255.0),
        targets=torch.from_numpy(np.concatenate(tg).astype(np.float32)).reshape(-1, 6),
        ignore=torch.from_numpy(np.concatenate(ig).astype(np.float32)).reshape(-1, 5),
    )


def make_batch(
    store: ImageStore, indices: list[int], cfg: AugmentConfig, rng: np.random.Generator, mosaic_on: bool
) -> Batch:
    """Augmented samples of ``indices`` (mosaic partners drawn at random from the whole store)."""
    samples = []
    for i in indices:
        use_mosaic = mosaic_on and rng.random() < cfg.mosaic
        items = [store.get(i)]
        if use_mosaic:
            items += [store.get(int(j)) for j in rng.integers(0, len(store), 3)]
        samples.append(make_sample(items, cfg, rng, use_mosaic))
    return collate(samples)


def rank_batches(n: int, batch: int, rank: int, world: int, seed: int, epoch: int) -> list[list[int]]:
    """This rank's batches of a shuffled epoch over ``n`` samples. Every rank gets the same number of batches
    (``ceil(n / world)`` samples; the shorter shards repeat one sample), so DDP steps stay in lock-step."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    mine = order[rank::world]
    per = -(-n // world)
    mine = mine + order[: per - len(mine)]
    return [mine[i : i + batch] for i in range(0, len(mine), batch)]
