"""The setup of the backends' tracking comparison (docs/performance.md, "Tracking"; the test is
tests/integration/test_inference_tracking.py): an encoder whose backend-computed blocks count, and a tracker config
that lets every embedding difference change an association.

    python scripts/inference_tracking_setup.py --weights W.safetensors --out DIR

writes ``DIR/encoder.safetensors`` (a randomly initialised MixEncoder on spp + s8 + pixels2 for the detector ``W``,
seed 0, block weights colour 1, pooled features 0.3, learned 0.3: the two blocks the inference backend computes
carry weight beside the colour histogram) and ``DIR/tracker.json`` (appearance at full weight at any margin).
Then ``roitrack eval-mot ... --appearance on --weights W --encoder DIR/encoder.safetensors --config
DIR/tracker.json --backend B --precision P``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

STRONG_APPEARANCE = {
    "appearance_min_margin": 0.0,
    "appearance_margin_ref": 0.02,
    "appearance_max_misleading": 1.0,
    "reid_max_misleading": 1.0,
    "appearance_weight": 1.0,
    "appearance_decisive_gap": 0.02,
    "appearance_decisive_dist": 0.6,
    "appearance_decisive_motion_gap": 1.0,
    "appearance_gate": 1.0,
}


def write_setup(weights: Path, out: Path, raw: float = 0.3, learned: float = 0.3) -> tuple[Path, Path]:
    """``(encoder path, tracker config path)`` written into ``out``."""
    from tracker_core.detector import load_detector
    from tracker_core.encoder import EncoderMeta, MixEncoder, save_encoder

    det = load_detector(weights)
    c32, c8 = int(det.taps_channels[32]), int(det.taps_channels[8])
    taps = {"32": c32, "8": c8, "1": 12}
    torch.manual_seed(0)
    enc = MixEncoder([(int(k), v) for k, v in taps.items()])
    enc.set_block_weight("raw", raw)
    enc.set_block_weight("learned", learned)
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp+s8+pixels2",
        tap_channels=taps,
        arch="mix",
        blocks=enc.blocks,
        training={"note": "randomly initialised (scripts/inference_tracking_setup.py)"},
    )
    out.mkdir(parents=True, exist_ok=True)
    encoder = out / "encoder.safetensors"
    save_encoder(encoder, enc, meta)
    config = out / "tracker.json"
    config.write_text(json.dumps(STRONG_APPEARANCE, indent=1) + "\n")
    return encoder, config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="detector .safetensors")
    p.add_argument("--out", required=True, help="folder for encoder.safetensors and tracker.json")
    p.add_argument("--raw", type=float, default=0.3, help="weight of the pooled-feature block")
    p.add_argument("--learned", type=float, default=0.3, help="weight of the learned block")
    a = p.parse_args()
    enc, cfg = write_setup(Path(a.weights), Path(a.out), a.raw, a.learned)
    print(f"wrote {enc} and {cfg}")


if __name__ == "__main__":
    main()
