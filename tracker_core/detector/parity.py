"""Parity report: our detector against the official implementation's reference outputs.

    python -m tracker_core.detector.parity ../shared/reference/yolov7 [--arch yolov7-tiny] [--json]

Converts each reference checkpoint (to a temporary folder), runs frames f0 and f1 at both shapes, unfused and
fused, and prints ``max|ours - ref| / max|ref|`` for the tap (both frames) and the prediction (f0), beside the
tolerances of the reference README (1e-4 unfused, 1e-3 fused) and the official code's own fused-vs-unfused gap.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracker_core.detector.convert import convert_weights
from tracker_core.detector.detector import load_detector

SHAPES = ("640x640", "384x640")


def parity_report(ref_dir: str | Path, arches: list[str] | None = None) -> list[dict[str, Any]]:
    ref_dir = Path(ref_dir)
    manifest = json.loads((ref_dir / "manifest.json").read_text())["arches"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in arches or list(manifest):
            weights = Path(tmp) / f"{arch}.safetensors"
            convert_weights(ref_dir / manifest[arch]["checkpoint"], weights)
            ref = np.load(ref_dir / manifest[arch]["parity"])
            for fuse in (False, True):
                det = load_detector(weights, fuse=fuse)
                for shape in SHAPES:
                    x = np.stack([ref[f"f0_{shape}_input_u8"], ref[f"f1_{shape}_input_u8"]])
                    tap, pred = det.forward_raw(torch.from_numpy(x).float() / 255.0)
                    rp = ref[f"f0_{shape}_pred"]
                    dp = np.abs(pred[:1].numpy() - rp)
                    row = {
                        "arch": arch,
                        "shape": shape,
                        "fused": fuse,
                        "tap_rel_f0": _rel(tap[:1].numpy(), ref[f"f0_{shape}_tap"]),
                        "tap_rel_f1": _rel(tap[1:].numpy(), ref[f"f1_{shape}_tap"]),
                        "pred_rel_f0": float(dp.max() / np.abs(rp).max()),
                        "pred_abs_f0": float(dp.max()),
                        "pred_frac_over_1e-4": float((dp > 1e-4 * np.abs(rp).max()).mean()),
                        "official_fused_vs_unfused_abs": manifest[arch][
                            "max_abs_diff_fused_vs_unfused_f0_640x640"
                        ],
                    }
                    rows.append(row)
    return rows


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| arch | shape | model | tap f0 | tap f1 | pred f0 | pred f0 abs px | share of pred > 1e-4 rel | tolerance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['shape']} | {'fused' if r['fused'] else 'unfused'} | {r['tap_rel_f0']:.1e} "
            f"| {r['tap_rel_f1']:.1e} | {r['pred_rel_f0']:.1e} | {r['pred_abs_f0']:.3f} "
            f"| {r['pred_frac_over_1e-4']:.1e} | {'1e-3' if r['fused'] else '1e-4'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="parity of our YOLOv7 against the official reference outputs")
    p.add_argument("ref_dir", type=Path)
    p.add_argument("--arch", nargs="+", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = parity_report(args.ref_dir, args.arch)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
