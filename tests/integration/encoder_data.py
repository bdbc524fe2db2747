"""Tiny synthetic inputs for the encoder tests: a MOTChallenge sequence and a random detector file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

H, W = 96, 128
SIZE = (96, 128)  # detector input (multiples of 32): maps of 3x4 cells at stride 32


def make_sequence(root: Path, frames: int = 12, objects: int = 3, seed: int = 0) -> Path:
    """``root`` as a MOTChallenge sequence: textured boxes moving linearly, gt.txt (ids) and det.txt (scores)."""
    rng = np.random.default_rng(seed)
    (root / "img1").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(exist_ok=True)
    (root / "det").mkdir(exist_ok=True)
    colours = rng.integers(30, 225, size=(objects, 2, 3))
    start = np.stack([rng.uniform(5, W - 40, objects), rng.uniform(5, H - 50, objects)], axis=1)
    vel = rng.uniform(-1.5, 1.5, size=(objects, 2))
    size = np.stack([rng.uniform(18, 30, objects), rng.uniform(30, 42, objects)], axis=1)
    gt, det = [], []
    for f in range(1, frames + 1):
        img = np.full((H, W, 3), 90, np.uint8)
        img[:, :, 1] = np.linspace(60, 140, W, dtype=np.uint8)[None, :]
        for k in range(objects):
            x, y = start[k] + vel[k] * (f - 1)
            x, y = float(np.clip(x, 0, W - size[k, 0])), float(np.clip(y, 0, H - size[k, 1]))
            x2, y2 = x + size[k, 0], y + size[k, 1]
            ym = int((y + y2) / 2)
            cv2.rectangle(img, (int(x), int(y)), (int(x2), ym), colours[k, 0].tolist(), -1)
            cv2.rectangle(img, (int(x), ym), (int(x2), int(y2)), colours[k, 1].tolist(), -1)
            w, h = x2 - x, y2 - y
            gt.append(f"{f},{k + 1},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1")
            det.append(f"{f},-1,{x + 0.5:.2f},{y - 0.5:.2f},{w:.2f},{h:.2f},{80 + 5 * k},-1,-1,-1")
        cv2.imwrite(str(root / "img1" / f"{f:06d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (root / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (root / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname={root.name}\nimDir=img1\nframeRate=7\nseqLength={frames}\nimWidth={W}\nimHeight={H}\n"
    )
    return root


def make_detector_file(path: Path, arch: str = "yolov7-tiny", seed: int = 0) -> Path:
    """A randomly initialised detector saved in our safetensors format (no shared data needed)."""
    from tracker_core.detector import build_detector
    from tracker_core.detector.weights_io import save_weights

    det = build_detector(arch, seed=seed)
    save_weights(path, det.net.state_dict(), det.meta)
    return path


def write_pairs_dir(root: Path, seq: Path, pairs: list[tuple[int, int]]) -> Path:
    """The ``--pairs`` layout for frame pairs of ``seq`` (same JPEG bytes, labels normalised to the image)."""
    import json
    import shutil

    from training.sources import read_gt

    gt = read_gt(seq)
    for side in ("pre", "now"):
        (root / side / "pic").mkdir(parents=True, exist_ok=True)
        (root / side / "lable").mkdir(parents=True, exist_ok=True)
    for n, (a, b) in enumerate(pairs):
        for side, f in (("pre", a), ("now", b)):
            shutil.copyfile(seq / "img1" / f"{f:06d}.jpg", root / side / "pic" / f"{n}.jpg")
            boxes, ids = gt[f]
            anns = [
                {
                    "id": int(i),
                    "class_id": 0,
                    "bbox": {
                        "cx": float((bx[0] + bx[2]) / 2 / W),
                        "cy": float((bx[1] + bx[3]) / 2 / H),
                        "w": float((bx[2] - bx[0]) / W),
                        "h": float((bx[3] - bx[1]) / H),
                    },
                }
                for bx, i in zip(boxes, ids, strict=True)
            ]
            (root / side / "lable" / f"{n}.json").write_text(json.dumps({"annotations": anns}))
    return root
