"""Stage 1: the frozen detector's feature maps and the detections of every frame, in sharded cache files.

Layout: ``<cache_root>/<source>-<key>/manifest.json`` + ``shard_00000.safetensors`` ... (never pickle). Each
shard holds up to ``shard_frames`` frames:

- ``map_<stride>``: ``[S,C,H/s,W/s]`` float16 detector maps (stride 32 = SPP-CSPC, 16/8 finer taps), and
  ``map_1``: ``[S,3,H,W]`` uint8 letterboxed frames when the pixels tap is cached;
- ``frames`` ``[S]`` int64 (1-based frame numbers), ``transforms`` ``[S,7]`` float64 (letterbox fields);
- ``boxes`` ``[M,4]`` float32 xyxy original px, ``box_frame`` ``[M]`` int64 (row in the shard), ``scores`` ``[M]``.

Whole maps are cached (not ROIs) so that stage 2 can jitter boxes and still run the exact serving op.
Extraction is resumable: finished shards are kept, a rerun continues with the first missing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from tracker_core.errors import WeightsError
from tracker_core.evaluation.mot_io import ScoreRule
from tracker_core.features import PIXEL_STRIDE, FeatureSpec
from tracker_core.letterbox import LetterboxTransform
from training.sources import Source, count_frames, iter_frames, read_detections

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def transform_to_row(t: LetterboxTransform) -> list[float]:
    return [t.scale, t.pad_left, t.pad_top, t.src_w, t.src_h, t.dst_w, t.dst_h]


def row_to_transform(r: np.ndarray) -> LetterboxTransform:
    return LetterboxTransform(
        scale=float(r[0]),
        pad_left=int(r[1]),
        pad_top=int(r[2]),
        src_w=int(r[3]),
        src_h=int(r[4]),
        dst_w=int(r[5]),
        dst_h=int(r[6]),
    )


@dataclass
class CachedSource:
    """One source's cache loaded in memory, frames in order.

    ``maps[stride]``: ``[F,C,h,w]`` (float16, or uint8 for stride 1); ``boxes[i]``/``scores[i]``: detections of
    frame ``i``; ``frames[i]``: its 1-based frame number.
    """

    name: str
    frame_rate: float
    maps: dict[int, torch.Tensor]
    frames: np.ndarray
    transforms: list[LetterboxTransform]
    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    labels: list[np.ndarray] = field(default_factory=list)  # pseudo-identities, filled by tracklet linking

    def __len__(self) -> int:
        return len(self.frames)

    def tap_channels(self) -> dict[int, int]:
        return {s: int(m.shape[1]) for s, m in self.maps.items()}


def _cache_key(src: Source, detector: Any, size: tuple[int, int], det_mode: str, frame_step: int) -> str:
    h = hashlib.sha256(
        json.dumps(
            [
                str(src.path.resolve()),
                detector.arch,
                detector.weights_sha256,
                list(size),
                det_mode,
                frame_step,
                CACHE_VERSION,
            ]
        ).encode()
    )
    return h.hexdigest()[:12]


def _det_mode(src: Source, score_rule: ScoreRule | None = None) -> str:
    """What the cached detections come from (part of the cache key: another score rule, another cache)."""
    if src.det_file is None:
        return "detector"
    rule = score_rule or ScoreRule()
    return "det.txt" if rule == ScoreRule() else f"det.txt {rule.describe()}"


def find_or_make_cache_dir(
    cache_root: Path,
    src: Source,
    detector: Any,
    size: tuple[int, int],
    strides: tuple[int, ...],
    frame_step: int = 1,
    score_rule: ScoreRule | None = None,
) -> Path:
    """An existing cache of this source/detector/size/step with all of ``strides``, or a new directory name."""
    key = _cache_key(src, detector, size, _det_mode(src, score_rule), frame_step)
    prefix = f"{src.name}-{key}"
    if cache_root.is_dir():
        for d in sorted(cache_root.glob(prefix + "-*")):
            m = d / "manifest.json"
            if m.is_file():
                man = json.loads(m.read_text())
                if set(strides) <= set(man.get("strides", [])):
                    return d
    return cache_root / f"{prefix}-{'_'.join(str(s) for s in sorted(strides, reverse=True))}"


def extract_source(
    src: Source,
    detector: Any,
    spec: FeatureSpec,
    cache_root: Path,
    size: tuple[int, int] = (640, 640),
    shard_frames: int = 16,
    frame_step: int = 1,
    batch: int = 4,
    conf: float = 0.25,
    progress: bool = True,
    score_rule: ScoreRule | None = None,
) -> Path:
    """Run stage 1 for one source (resumable). Returns the cache directory. ``score_rule``: how det.txt scores
    are read (``--score-scale`` / ``--score-clip``)."""
    torch.set_flush_denormal(True)  # random/badly scaled weights make denormals: same maps, 2x+ faster on CPU
    strides = spec.strides
    cdir = find_or_make_cache_dir(cache_root, src, detector, size, strides, frame_step, score_rule)
    cdir.mkdir(parents=True, exist_ok=True)
    man_path = cdir / "manifest.json"
    n = (count_frames(src) + frame_step - 1) // frame_step  # frames kept: 1, 1 + step, ...
    if man_path.is_file():
        man = json.loads(man_path.read_text())
        strides = tuple(man["strides"])
        shard_frames = int(man["shard_frames"])
    else:
        man = {
            "version": CACHE_VERSION,
            "source": str(src.path),
            "kind": src.kind,
            "name": src.name,
            "frame_rate": src.frame_rate,
            "detector_arch": detector.arch,
            "detector_sha256": detector.weights_sha256,
            "strides": list(strides),
            "input_size": list(size),
            "detections": _det_mode(src, score_rule),
            "num_frames": n,
            "frame_step": frame_step,
            "shard_frames": shard_frames,
            "complete": False,
        }
        man_path.write_text(json.dumps(man, indent=1))
    if man.get("complete"):
        return cdir
    num_shards = (n + shard_frames - 1) // shard_frames
    done = {i for i in range(num_shards) if (cdir / f"shard_{i:05d}.safetensors").is_file()}
    dets = read_detections(src, score_rule)
    todo = [i for i in range(num_shards) if i not in done]
    bar = tqdm(
        total=n,
        initial=len(done) * shard_frames,
        desc=f"cache {src.name}",
        unit="frame",
        disable=not progress,
    )
    for shard in todo:
        start = shard * shard_frames * frame_step
        frames: list[tuple[int, np.ndarray]] = []
        for fi, img in iter_frames(src, start=start):
            if (fi - 1) % frame_step:
                continue
            frames.append((fi, img))
            if len(frames) == shard_frames:
                break
        if not frames:  # a video's frame count (container metadata) can overstate what decodes
            n = shard * shard_frames
            break
        _write_shard(
            cdir / f"shard_{shard:05d}.safetensors", frames, detector, strides, size, dets, batch, conf
        )
        bar.update(len(frames))
    bar.close()
    man["complete"] = True
    man["num_frames"] = n
    man_path.write_text(json.dumps(man, indent=1))
    return cdir


@torch.no_grad()
def _write_shard(
    path: Path,
    frames: list[tuple[int, np.ndarray]],
    detector: Any,
    strides: tuple[int, ...],
    size: tuple[int, int],
    dets: dict[int, tuple[np.ndarray, np.ndarray]] | None,
    batch: int,
    conf: float,
) -> None:
    maps: dict[int, list[torch.Tensor]] = {s: [] for s in strides}
    rows, fidx, boxes, box_frame, scores = [], [], [], [], []
    for b0 in range(0, len(frames), batch):
        chunk = frames[b0 : b0 + batch]
        x, transforms = detector.preprocess([img for _, img in chunk], size)
        taps, pred = detector.forward_taps(x)
        for s in strides:
            if s == PIXEL_STRIDE:
                maps[s].append((x.float() * 255.0).round().clamp(0, 255).to(torch.uint8).cpu())
            else:
                if s not in taps:
                    raise WeightsError(
                        f"detector {detector.arch} has no stride-{s} map; it gives {sorted(taps)}"
                    )
                maps[s].append(taps[s].to(torch.float16).cpu())
        if dets is None:
            found = detector.postprocess(pred, transforms, conf=conf)
        for j, ((fi, _), t) in enumerate(zip(chunk, transforms, strict=True)):
            if dets is not None:
                bx, sc = dets.get(fi, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
            else:
                bx, sc = found[j][0], found[j][1]
            bx = _clip_boxes(bx, t)
            keep = (bx[:, 2] - bx[:, 0] >= 2) & (bx[:, 3] - bx[:, 1] >= 2)
            boxes.append(bx[keep])
            scores.append(np.asarray(sc, np.float32)[keep])
            box_frame.append(np.full(int(keep.sum()), b0 + j, np.int64))
            rows.append(transform_to_row(t))
            fidx.append(fi)
    tensors = {f"map_{s}": torch.cat(v).contiguous() for s, v in maps.items()}
    tensors["frames"] = torch.tensor(fidx, dtype=torch.int64)
    tensors["transforms"] = torch.tensor(rows, dtype=torch.float64)
    tensors["boxes"] = torch.from_numpy(np.concatenate(boxes).reshape(-1, 4).astype(np.float32))
    tensors["box_frame"] = torch.from_numpy(np.concatenate(box_frame))
    tensors["scores"] = torch.from_numpy(np.concatenate(scores).astype(np.float32))
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _clip_boxes(b: np.ndarray, t: LetterboxTransform) -> np.ndarray:
    b = np.asarray(b, np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, t.src_w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, t.src_h)
    return b


def load_cache(cdir: Path, strides: tuple[int, ...]) -> CachedSource:
    """Load a complete cache directory, keeping only the maps of ``strides``."""
    man = json.loads((cdir / "manifest.json").read_text())
    if not man.get("complete"):
        raise WeightsError(f"cache {cdir} is incomplete; rerun stage 1")
    missing = set(strides) - set(man["strides"])
    if missing:
        raise WeightsError(f"cache {cdir} lacks strides {sorted(missing)}")
    maps: dict[int, list[torch.Tensor]] = {s: [] for s in strides}
    frames, rows, boxes, scores = [], [], [], []
    for p in sorted(cdir.glob("shard_*.safetensors")):
        t = load_file(str(p))
        for s in strides:
            maps[s].append(t[f"map_{s}"])
        f = t["frames"].numpy()
        frames.append(f)
        rows.append(t["transforms"].numpy())
        bf = t["box_frame"].numpy()
        bx, sc = t["boxes"].numpy(), t["scores"].numpy()
        for j in range(len(f)):
            boxes.append(bx[bf == j])
            scores.append(sc[bf == j])
    return CachedSource(
        name=man["name"],
        frame_rate=float(man.get("frame_rate", 7.0)),
        maps={s: torch.cat(v) for s, v in maps.items()},
        frames=np.concatenate(frames),
        transforms=[row_to_transform(r) for r in np.concatenate(rows)],
        boxes=boxes,
        scores=scores,
    )
