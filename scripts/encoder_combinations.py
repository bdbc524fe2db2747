"""Score every block-weight combination of a trained MixEncoder on a test sequence (``roitrack val`` pairs).

    python scripts/encoder_combinations.py --mot runs/pets-test --weights runs/yolov7-tiny.safetensors \
        --encoder runs/enc/d0/encoder.safetensors [--gaps 5,10,25,50] [--json]

For each gap (stride 10, ground-truth boxes as ``roitrack val --mot``) and each weight setting of the encoder's
blocks (raw pooled input, colour stripes, learned), pooled Top-1 / MRR; plus the whole-box colour histogram and
the raw-feature baseline on the same queries. It is how the default blocks were chosen (docs/encoder.md).
"""

from __future__ import annotations

import argparse
import itertools
import json

from tracker_core.detector import load_detector
from tracker_core.encoder import MixEncoder, load_encoder
from training.encoder.config import input_size_for
from training.encoder.val_data import mot_pairs
from training.encoder.validate import extract_val_features, validate

GRID = {"raw": (0.0, 0.5, 1.0), "learned": (0.0, 0.5, 1.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mot", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--encoder", required=True)
    p.add_argument("--gaps", default="5,10,25,50")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    det = load_detector(a.weights)
    enc = load_encoder(a.encoder, detector=det)
    if not isinstance(enc, MixEncoder):
        raise SystemExit("not a MixEncoder checkpoint")
    size = input_size_for(1, 1, int(enc.meta.training.get("input_size", 640)), rect=False)
    gaps = [int(g) for g in a.gaps.split(",")]
    pairs = {g: mot_pairs(a.mot, g, 10) for g in gaps}
    flat = [p for g in gaps for p in pairs[g]]
    allv = extract_val_features(flat, det, enc.meta.spec, size)  # one detector run per distinct frame
    chosen = enc.block_weights()
    rows: dict[str, dict[int, tuple[float, float]]] = {}
    k = 0
    for g in gaps:
        n = len(pairs[g])
        v = type(allv)(
            pairs[g],
            allv.pre[k : k + n],
            allv.now[k : k + n],
            allv.pre_hist[k : k + n] if allv.pre_hist else None,
            allv.now_hist[k : k + n] if allv.now_hist else None,
        )
        k += n
        free = [b for b in GRID if b in enc.blocks]
        for combo in itertools.product(*(GRID[b] for b in free)):
            w = dict(zip(free, combo, strict=True))
            for b, x in w.items():
                enc.set_block_weight(b, x)
            r = validate(v, enc)
            name = "color 1, " + ", ".join(f"{b} {x:g}" for b, x in w.items())
            rows.setdefault(name, {})[g] = (r["encoder"]["pooled"]["top1"], r["encoder"]["pooled"]["mrr"])
            for base in ("color_histogram", "raw_features", "center_distance"):
                rows.setdefault(base, {})[g] = (r[base]["pooled"]["top1"], r[base]["pooled"]["mrr"])
    for b, x in chosen.items():
        enc.set_block_weight(b, x)
    if a.json:
        print(
            json.dumps(
                {"chosen": chosen, "rows": {k: {str(g): v for g, v in r.items()} for k, r in rows.items()}}
            )
        )
        return
    print(f"weights chosen on the held-out frames: {chosen}")
    print("| combination | " + " | ".join(f"gap {g}" for g in gaps) + " |")
    print("| --- |" + " --- |" * len(gaps))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[g][0]:.3f} / {r[g][1]:.3f}" for g in gaps) + " |")


if __name__ == "__main__":
    main()
