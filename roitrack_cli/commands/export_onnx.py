"""``roitrack export-onnx``: the ROI encoder as ONNX with a dynamic batch axis, checked against PyTorch."""

from __future__ import annotations

import argparse

HELP = "export the ROI encoder to ONNX"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", required=True, metavar="ENCODER.safetensors")
    parser.add_argument("--out", required=True, metavar="ENCODER.onnx")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="largest allowed |onnx - torch| on random input"
    )


def run(args: argparse.Namespace) -> int:
    from training.encoder.onnx_export import export_encoder_onnx

    report = export_encoder_onnx(args.encoder, args.out, opset=args.opset, atol=args.atol)
    print(
        f"wrote {args.out}: input {report['input']} [N,{report['in_channels']},10,10] -> output {report['output']} "
        f"[N,{report['embed_dim']}]; max |onnx - torch| = {report['max_abs_diff']:.2e} over batches "
        f"{report['checked_batches']}"
    )
    return 0
