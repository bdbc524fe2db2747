#!/usr/bin/env bash
# GPU check: bench items 1 (per-stage cost, `roitrack bench stages`) and 3 (multi-stream scaling with
# cross-stream batching on/off, `roitrack bench scaling`) on CUDA, in under 8 minutes on one GPU.
#
# Usage: benchmarks/gpu_check.sh [OUTDIR]     (default: $OUT, else ./gpu_check_out)
# Writes OUTDIR/{stages,scaling}.{json,md}, scaling.png, gpu.txt and log.txt. Exits 3 when torch sees no
# CUDA device (this script is for GPU hosts only), non-zero when a benchmark fails or runs out of time.
set -euo pipefail

OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"  # absolute: we change directory next
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA device (torch.cuda.is_available() is False); run this on a GPU host" >&2
    exit 3
fi

LOG="$OUT_DIR/log.txt"
: > "$LOG"
{
    date -u
    "$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")'
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
} > "$OUT_DIR/gpu.txt" 2>&1
cat "$OUT_DIR/gpu.txt"

start=$SECONDS
# 1. Per-stage cost, yolov7 and yolov7-tiny at 320 and 640 (fused, fp16, channels_last on CUDA). ~1-2 min.
echo "== stages (limit 180 s)" | tee -a "$LOG"
timeout 180 "$PY" -m roitrack_cli.main bench stages --device cuda --frames 30 --json --out "$OUT_DIR" \
    > "$OUT_DIR/stages.json" 2>> "$LOG"
echo "stages done in $((SECONDS - start)) s" | tee -a "$LOG"

# 3. Scaling: 1..16 streams, batching on vs off. Cameras send as fast as the server answers (--fps 0: closed
# loop, 4 frames in flight per stream, so the server is saturated and drops the oldest waiting frame),
# yolov7-tiny at 640, 8 s per point + 1 s warm-up: 2 servers x 5 points x 9 s + start-up ~ 2-3 min.
echo "== scaling (limit 270 s)" | tee -a "$LOG"
timeout 270 "$PY" -m roitrack_cli.main bench scaling --device cuda --size 640 --fps 0 --duration 8 --warmup 1 \
    --max-batch 16 --json --out "$OUT_DIR" > "$OUT_DIR/scaling.json" 2>> "$LOG"
echo "scaling done; total $((SECONDS - start)) s" | tee -a "$LOG"

"$PY" - "$OUT_DIR" <<'PY'
import json, sys
out = sys.argv[1]
st = json.load(open(f"{out}/stages.json"))
sc = json.load(open(f"{out}/scaling.json"))
for r in st["results"]:
    print(f"stages {r['arch']:>11} {r['size']}: {r['total_ms']:.2f} ms/frame, forward {r['ms']['forward']:.2f} ms")
for r in sc["results"]:
    print(f"scaling {r['streams']:>2} streams: on {r['on']['fps']:.1f} fps, off {r['off']['fps']:.1f} fps, "
          f"speedup {r['speedup']:.2f}x, p99 on {r['on']['latency_ms']['p99']:.1f} ms")
print(f"speedup at 8 streams: {sc['speedup_at_8']:.2f}x (target {sc['target_speedup']}x)")
PY
