"""``roitrack bench appearance``: does appearance help tracking on frames the encoder never saw?

One command, end to end, each step through the real commands (child processes):

1. time split: ``roitrack slice-seq SEQ --frames 1-250`` (train) and ``251-400`` (test), unless ``--train`` and
   ``--test`` are given;
2. ``roitrack train --data TRAIN --weights W`` with the defaults (unless ``--encoder``), timed;
3. ``roitrack val --mot TEST --gap G`` for every ``--gaps`` (encoder vs raw features, colour histogram, centre
   distance);
4. tracking TEST with its public detections (``--score-scale``) with appearance off and on, through
   ``roitrack eval-mot`` and through a real ``roitrack serve`` + ``roitrack stream --detections auto``; both
   scored by TrackEval (HOTA, MOTA, IDF1, IDSW).

With ``--reid-model FILE.onnx`` an ONNX person-ReID model is scored beside them: as a ``roitrack val`` method
(``reid``) and as a third tracking mode (``reid``: ``eval-mot --reid-model`` and ``serve --reid-model`` +
``stream --embedding reid``).

Writes ``<out>/<name>.md`` and ``<out>/<name>.json`` (``--name``, default ``appearance``); prints one JSON object
with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tracker_core.errors import InvalidInputError, UnavailableError

METRICS = ("HOTA", "MOTA", "IDF1", "IDSW")
VAL_METHODS = ("encoder", "raw_features", "color_histogram", "center_distance", "reid")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        help="detector .safetensors (e.g. converted yolov7-tiny; default: a randomly initialised yolov7-tiny written "
        "into --work, so every stage runs - the figures are then not a trained detector's)",
    )
    p.add_argument("--seq", default="../shared/data/PETS09-S2L1-dev", help="sequence to split in time")
    p.add_argument("--split", default="1-250:251-400", help="TRAIN:TEST frame ranges of --seq")
    p.add_argument("--train", help="training sequence/video (instead of splitting --seq)")
    p.add_argument("--test", help="test MOTChallenge sequence with gt/ and det/ (instead of splitting --seq)")
    p.add_argument("--encoder", help="use this encoder instead of training one")
    p.add_argument("--work", default="runs/bench-appearance", help="folder for the splits, encoder, results")
    p.add_argument("--train-args", default="", help="extra arguments for roitrack train (quoted)")
    p.add_argument("--score-scale", default="100", help="detection scores are divided by this (PETS: 100)")
    p.add_argument(
        "--score-clip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clip scaled detection scores to [0, 1] (default on: the default --seq, PETS09, reaches 138.9 / 100); "
        "--no-score-clip: out of range = error",
    )
    p.add_argument("--gaps", default="5,10,25,50", help="roitrack val gaps")
    from roitrack_cli.reid_args import add_reid_args

    add_reid_args(
        p, "an ONNX person-ReID model to score beside the encoder (val method and tracking mode reid)"
    )
    p.add_argument("--no-serve", action="store_true", help="skip the serve + stream path")
    p.add_argument("--out", default="docs/bench", help="folder for <name>.md / .json (default docs/bench)")
    p.add_argument("--name", default="appearance", help="file name stem (default appearance)")
    p.add_argument("--no-write", action="store_true", help="do not write the Markdown table and JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cli(*args: str, timeout: float = 3600) -> str:
    from benchmarks.service import child_env

    cmd = [sys.executable, "-m", "roitrack_cli.main", *args]
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise UnavailableError(f"{' '.join(cmd[2:])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def _last_json(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


def _splits(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    if args.train and args.test:
        return Path(args.train), Path(args.test)
    if args.train or args.test:
        raise InvalidInputError("give both --train and --test, or neither (then --seq is split)")
    try:
        tr, te = args.split.split(":")
    except ValueError:
        raise InvalidInputError(f"--split must be TRAIN:TEST frame ranges, got {args.split!r}") from None
    out = []
    for name, rng in (("train", tr), ("test", te)):
        d = work / f"{Path(args.seq).name}-{name}-{rng}"
        if not (d / "seqinfo.ini").is_file():
            _cli("slice-seq", args.seq, "--frames", rng, "--out", str(d))
        out.append(d)
    return out[0], out[1]


def _score_args(args: argparse.Namespace) -> list[str]:
    """The one score rule (issue 12), the same for train, eval-mot and stream."""
    return ["--score-scale", str(args.score_scale), *(["--score-clip"] if args.score_clip else [])]


def _reid_args(args: argparse.Namespace) -> list[str]:
    from roitrack_cli.reid_args import reid_cli_args

    return ["--reid-model", str(args.reid_model), *reid_cli_args(args)] if args.reid_model else []


def _eval_mot(
    test: Path, args: argparse.Namespace, encoder: Path | None, res: Path, reid: bool = False
) -> dict[str, Any]:
    cmd = ["eval-mot", "--seq", str(test), "--det", str(test / "det" / "det.txt")]
    cmd += [*_score_args(args), "--out", str(res), "--json"]
    if encoder is not None:
        cmd += ["--appearance", "on", "--weights", args.weights, "--encoder", str(encoder)]
    if reid:
        cmd += ["--appearance", "reid", *_reid_args(args)]
    r = _last_json(_cli(*cmd))
    return {k: r[k] for k in METRICS}


def _served(test: Path, args: argparse.Namespace, encoder: Path, work: Path) -> dict[str, dict[str, Any]]:
    from benchmarks.service import ServerProcess
    from tracker_core.evaluation import evaluate_results

    files = {"off": work / "served_off.txt", "on": work / "served_on.txt"}
    settings: dict[str, Any] = {"weights": args.weights, "encoder": str(encoder)}
    if args.reid_model:
        files["reid"] = work / "served_reid.txt"
        settings["reid_model"] = str(args.reid_model)
        for name in (
            "reid_size",
            "reid_channels",
            "reid_mean",
            "reid_std",
            "reid_pixel_scale",
            "reid_config",
        ):
            if getattr(args, name, None) is not None:
                settings[name] = getattr(args, name)
    with ServerProcess(settings, log_path=str(work / "serve.log")) as srv:
        for mode, path in files.items():
            cmd = ["stream", "--server", srv.address, "--source", str(test), "--detections", "auto"]
            cmd += [*_score_args(args), "--stream-id", f"bench-{mode}", "--mot-out", str(path), "--quiet"]
            _cli(*cmd, "--embedding", {"on": "roi"}.get(mode, mode))
    scores = evaluate_results(test, {m: str(p) for m, p in files.items()})
    return {m: {k: scores[m][k] for k in METRICS} for m in files}


def command_line(args: argparse.Namespace) -> str:
    """The ``roitrack bench appearance`` command that reproduces this run (its data, encoder and files)."""
    parts = [] if getattr(args, "random_weights", False) else ["--weights", args.weights]
    parts += ["--score-scale", str(args.score_scale)]
    parts += [] if args.score_clip else ["--no-score-clip"]
    if args.train or args.test:
        parts += ["--train", str(args.train), "--test", str(args.test)]
    else:
        parts += ["--seq", args.seq, "--split", args.split]
    parts += ["--encoder", args.encoder] if args.encoder else []
    parts += ["--train-args", args.train_args] if args.train_args else []
    parts += _reid_args(args)
    parts += ["--gaps", args.gaps, "--work", args.work, "--name", args.name]
    return "roitrack bench appearance " + shlex.join(parts)


def random_weights(path: Path, arch: str = "yolov7-tiny", seed: int = 0) -> Path:
    """A randomly initialised detector in our safetensors format (what the bench runs without ``--weights``)."""
    from tracker_core.detector import build_detector
    from tracker_core.detector.weights_io import save_weights

    det = build_detector(arch, seed=seed)
    save_weights(path, det.net.state_dict(), det.meta)
    return path


def run_cli(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.random_weights = not args.weights
    if args.random_weights:
        args.weights = str(random_weights(work / "yolov7-tiny-random.safetensors"))
    train, test = _splits(args, work)
    result: dict[str, Any] = {
        "command": command_line(args),
        "train": str(train),
        "test": str(test),
        "weights": ("random yolov7-tiny (seed 0): " if args.random_weights else "") + args.weights,
    }
    if args.encoder:
        encoder = Path(args.encoder)
    else:
        t0 = time.monotonic()
        out = work / "encoder"
        _cli("train", "--data", str(train), "--weights", args.weights, "--out", str(out), "--no-progress",
             *_score_args(args), *args.train_args.split())  # fmt: skip
        result["train_seconds"] = round(time.monotonic() - t0, 1)
        encoder = out / "encoder.safetensors"
    result["encoder"] = str(encoder)
    val: dict[str, Any] = {}
    for g in (int(x) for x in args.gaps.split(",") if x):
        r = _last_json(_cli("val", "--mot", str(test), "--gap", str(g), "--stride", "10",
                            "--weights", args.weights, "--encoder", str(encoder), *_reid_args(args),
                            "--json"))  # fmt: skip
        val[str(g)] = {m: {k: r[m]["pooled"][k] for k in ("top1", "mrr")} for m in VAL_METHODS if m in r}
    result["val"] = val
    tracking = {
        "eval-mot": {
            "off": _eval_mot(test, args, None, work / "evalmot_off.txt"),
            "on": _eval_mot(test, args, encoder, work / "evalmot_on.txt"),
        }
    }
    if args.reid_model:
        tracking["eval-mot"]["reid"] = _eval_mot(test, args, None, work / "evalmot_reid.txt", reid=True)
    if not args.no_serve:
        tracking["serve+stream"] = _served(test, args, encoder, work)
    result["tracking"] = tracking
    result["targets"] = {
        path if mode == "on" else f"{path} ({mode})": {
            "idf1_gain": round(r[mode]["IDF1"] - r["off"]["IDF1"], 2),
            "idsw_change": int(r[mode]["IDSW"] - r["off"]["IDSW"]),
            "met": bool(r[mode]["IDF1"] >= r["off"]["IDF1"] + 2 and r[mode]["IDSW"] <= r["off"]["IDSW"]),
        }
        for path, r in tracking.items()
        for mode in r
        if mode != "off"
    }
    return result


def markdown(r: dict[str, Any]) -> str:
    methods = [m for m in VAL_METHODS if any(m in v for v in r["val"].values())]
    lines = [
        "# Appearance on unseen frames",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Train: `{r['train']}`; test: `{r['test']}`; encoder `{r['encoder']}`"
        + (f" (trained in {r['train_seconds']} s)" if "train_seconds" in r else ""),
        "",
        "## Cross-frame matching on the test frames (`roitrack val`, pooled Top-1 / MRR)",
        "",
        "| gap | " + " | ".join(methods) + " |",
        "| --- |" + " --- |" * len(methods),
    ]
    for g, v in r["val"].items():
        cells = [f"{v[m]['top1']:.3f} / {v[m]['mrr']:.3f}" if m in v else "n/a" for m in methods]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += ["", "## Tracking the test frames (public detections)", ""]
    lines += [
        "| path | appearance | " + " | ".join(METRICS) + " |",
        "| --- | --- |" + " --- |" * len(METRICS),
    ]
    for path, modes in r["tracking"].items():
        for mode, m in modes.items():
            lines.append(f"| {path} | {mode} | " + " | ".join(f"{m[k]:g}" for k in METRICS) + " |")
    lines += [
        "",
        "| path (embedding; on = ROI encoder) | IDF1 - off | IDSW - off | target (IDF1 +2, no more IDSW) |",
        "| --- | --- | --- | --- |",
    ]
    for path, t in r["targets"].items():
        lines.append(
            f"| {path} | {t['idf1_gain']:+.2f} | {t['idsw_change']:+d} | {'met' if t['met'] else 'not met'} |"
        )
    return "\n".join(lines)
