"""``roitrack eval-mot``: track a MOTChallenge sequence and score it with TrackEval."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from roitrack_cli.reid_args import add_reid_args, reid_options

HELP = "track a MOTChallenge sequence and score it with TrackEval"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seq", required=True, help="sequence folder: seqinfo.ini, img1/, gt/gt.txt")
    parser.add_argument(
        "--det", help="detections (MOTChallenge det.txt); omit to run the detector (--weights)"
    )
    parser.add_argument(
        "--score-scale",
        default="1",
        help="divide det scores by this (default 1: scores already in [0, 1]; 100 for MOT15's 0..100; "
        "'max': by the file's largest score)",
    )
    parser.add_argument(
        "--score-clip",
        action="store_true",
        help="clip scaled scores to [0, 1] (without it a score outside [0, 1] is an error)",
    )
    parser.add_argument(
        "--min-score", type=float, default=0.0, help="drop detections below this (after scaling)"
    )
    parser.add_argument(
        "--appearance",
        choices=("off", "on", "auto", "roi", "reid", "color"),
        default="auto",
        help="appearance embeddings: roi (ROI encoder: needs --weights and --encoder; 'on' is the same), reid "
        "(--reid-model on each detection's crop, or --embeddings), color (each box's HSV colour histogram from "
        "the frames: a baseline that needs no model), off, or auto (default: reid with "
        "--reid-model/--embeddings, roi with --encoder, else off - as the server does); the tracker weighs "
        "them by how informative they prove",
    )
    parser.add_argument("--weights", help="detector .safetensors (for --appearance on, or without --det)")
    parser.add_argument("--encoder", help="ROI encoder .safetensors (for --appearance on)")
    parser.add_argument("--device", default="cpu", help="torch device for the detector/encoder")
    from roitrack_cli.commands.serve import BACKEND_HELP, PRECISION_HELP
    from tracker_core.inference.options import BACKENDS, PRECISIONS

    parser.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    parser.add_argument("--size", type=int, default=640, help="detector input size (multiple of 32)")
    parser.add_argument(
        "--conf", type=float, default=0.25, help="detector confidence threshold (without --det)"
    )
    parser.add_argument(
        "--no-fuse",
        action="store_true",
        help="run the detector unfused (default: fused for inference, as `roitrack serve` runs it)",
    )
    add_reid_args(parser)
    parser.add_argument(
        "--save-embeddings",
        metavar="FILE.npz",
        help="write the embeddings computed here (per frame, with their boxes, the model's sha256 and the "
        "detections they belong to) for --embeddings",
    )
    parser.add_argument(
        "--embeddings",
        metavar="FILE.npz",
        help="use the embeddings of --save-embeddings instead of computing them (refused unless they were "
        "computed for exactly these detections)",
    )
    parser.add_argument(
        "--gmc",
        help="camera motion per frame for a moving camera: a gmc.txt ('index a11 a12 tx a21 a22 ty', BoT-SORT's "
        "convention); 'auto' uses the sequence's gmc.txt when it has one; 'frames' estimates it from the sequence's "
        "images with the server's estimator (tracker_core.motion)",
    )
    parser.add_argument(
        "--protocol",
        default="auto",
        choices=("auto", "mot15", "mot17", "mot20"),
        help="TrackEval scoring protocol: mot17/mot20 = official MOTChallenge preprocessing (distractor classes and "
        "the boxes matched to them removed, flag-0 rows ignored), mot15 = every flag-1 gt row counts; auto "
        "(default) chooses from the gt's columns and the sequence name",
    )
    parser.add_argument(
        "--camera-motion",
        choices=("auto", "on"),
        default="auto",
        help="with --gmc: apply the motion only while the camera is seen moving (auto, the server's default: a "
        "static camera's sub-pixel estimation noise is ignored) or on every frame (on)",
    )
    parser.add_argument("--config", help="JSON file of TrackerConfig overrides (default: DEFAULT_CONFIG)")
    parser.add_argument("--out", help="write the results here (MOTChallenge format)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def embedding_mode(args: argparse.Namespace) -> str:
    """``off`` | ``roi`` | ``reid`` | ``color`` | ``file`` (``--embeddings``) from ``--appearance`` and the models given;
    ``InvalidInputError`` for a combination that cannot run."""
    from tracker_core.errors import InvalidInputError

    mode = {"on": "roi"}.get(args.appearance, args.appearance)
    if args.embeddings and (args.reid_model or args.encoder):
        raise InvalidInputError(
            "give --embeddings (precomputed) or a model (--reid-model / --encoder), not both"
        )
    if mode == "off":
        if args.embeddings or args.save_embeddings:
            raise InvalidInputError("--embeddings / --save-embeddings need appearance (not --appearance off)")
        return mode
    if args.embeddings:
        return "file"
    if mode == "auto":
        if args.reid_model and args.encoder:
            raise InvalidInputError(
                "both --reid-model and --encoder given: choose with --appearance reid|roi"
            )
        mode = "reid" if args.reid_model else "roi" if args.encoder else "off"
    if mode == "roi" and not (args.weights and args.encoder):
        raise InvalidInputError(
            "--appearance roi (on) needs --weights (detector) and --encoder (ROI encoder)"
        )
    if mode == "color" and (args.reid_model or args.encoder):
        raise InvalidInputError("--appearance color needs no model: drop --reid-model / --encoder")
    if mode == "reid" and not args.reid_model:
        raise InvalidInputError("--appearance reid needs --reid-model FILE.onnx (or --embeddings FILE.npz)")
    if mode == "off" and args.save_embeddings:
        raise InvalidInputError("--save-embeddings needs a model (--reid-model or --encoder)")
    return mode


def run(args: argparse.Namespace) -> int:
    from tracker_core.errors import InvalidInputError
    from tracker_core.evaluation import (
        METRIC_KEYS,
        choose_protocol,
        evaluate_results,
        read_camera_motion,
        read_detections,
        read_seqinfo,
        track_sequence,
        write_results,
    )
    from tracker_core.evaluation.embedding_file import check_matches, load_embeddings, save_embeddings
    from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig

    seq = Path(args.seq)
    info = read_seqinfo(seq)
    mode = embedding_mode(args)
    protocol = choose_protocol(seq, args.protocol)  # before any long work: a wrong --protocol fails fast
    if not args.det and not args.weights:
        raise InvalidInputError("give --det (a detections file) or --weights (run the detector)")
    config = TrackerConfig.from_json_file(args.config) if args.config else DEFAULT_CONFIG
    loaded = load_embeddings(args.embeddings) if mode == "file" else None
    if loaded is not None and args.appearance in ("roi", "on", "reid", "color"):
        want = {"on": "roi"}.get(args.appearance, args.appearance)
        if loaded.meta.get("kind") != want:
            raise InvalidInputError(
                f"--appearance {args.appearance}, but {args.embeddings} holds {loaded.meta.get('kind')!r} embeddings"
            )
    reid = None
    if mode == "reid":  # load (and check) the model before any long work
        from tracker_core.reid import load_reid_model

        reid = load_reid_model(args.reid_model, reid_options(args), device=args.device)

    frames = (
        read_detections(args.det, info.seq_length, args.score_scale, args.min_score, args.score_clip)
        if args.det
        else None
    )
    embeddings = None
    t0 = time.perf_counter()
    inference: dict[str, object] = {}
    if args.weights and (frames is None or mode == "roi"):
        from tracker_core.evaluation.image_source import frames_from_images
        from tracker_core.inference import InferenceOptions

        frames, embeddings = frames_from_images(
            seq,
            info,
            args.weights,
            encoder=args.encoder if mode == "roi" else None,
            detections=frames,
            device=args.device,
            size=args.size,
            conf=args.conf,
            inference=InferenceOptions(backend=args.backend, precision=args.precision),
            report=inference,
            fuse=not args.no_fuse,
        )
    assert frames is not None
    what = args.det or f"detector {args.weights}"
    if reid is not None:
        from tracker_core.evaluation.image_source import reid_embeddings

        embeddings = reid_embeddings(seq, info, frames, reid)
    if mode == "color":
        from tracker_core.evaluation.image_source import color_embeddings

        embeddings = color_embeddings(seq, info, frames)
    if loaded is not None:
        check_matches(loaded, frames, args.embeddings, what)
        embeddings = loaded.embeddings
    image_s = time.perf_counter() - t0
    if args.save_embeddings:
        if embeddings is None:
            raise InvalidInputError("--save-embeddings: no embeddings were computed (give a model)")
        save_embeddings(
            args.save_embeddings, frames, embeddings, _embedding_meta(args, mode, reid, info.name)
        )
    camera_motion: str | None = None
    gmc_ms = 0.0
    warps = None
    if args.gmc == "frames":
        from tracker_core.motion import estimate_sequence_motion

        t1 = time.perf_counter()
        warps = estimate_sequence_motion(seq, info, frames, args.camera_motion)
        gmc_ms = 1000.0 * (time.perf_counter() - t1) / max(info.seq_length, 1)
        camera_motion = "frames"
    elif args.gmc:
        from tracker_core.motion import gate_known_motion

        gmc = seq / "gmc.txt" if args.gmc == "auto" else Path(args.gmc)
        if gmc.is_file() or args.gmc != "auto":
            warps = read_camera_motion(gmc, info.seq_length)  # NotFoundError naming a missing file
            # the server's policy: 'auto' applies a file's motion only while the camera is seen moving
            warps = gate_known_motion(
                warps, info.im_width, info.im_height, info.frame_rate, args.camera_motion
            )
            camera_motion = str(gmc)
    run_ = track_sequence(frames, info.frame_rate, config, embeddings, warps)

    with tempfile.TemporaryDirectory(prefix="roitrack-evalmot-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / f"{info.name}.txt"
        write_results(out, run_.lines)
        scores = evaluate_results(seq, {"roitrack": out}, protocol.name)["roitrack"]
    result: dict[str, object] = {k: scores[k] for k in (*METRIC_KEYS, "FP", "FN")}
    kind = loaded.meta.get("kind", "") if loaded is not None else mode
    result.update(
        {
            "frames": run_.frames,
            "tracker_ms_per_frame": run_.ms_per_frame,
            "sequence": info.name,
            "appearance": "off" if mode == "off" else "on",
            "embedding": kind,
            "embedding_model_sha256": (
                loaded.meta.get("model_sha256")
                if loaded is not None
                else reid.sha256
                if reid is not None
                else None
            ),
            "detections": what,
            "image_pipeline_s": image_s,
            "inference": inference.get("inference"),
            "camera_motion": camera_motion,
            "camera_motion_ms_per_frame": gmc_ms if args.gmc == "frames" else None,
            "protocol": protocol.name,
            "protocol_reason": protocol.reason,
            # how informative the tracker judged the embeddings at the end (docs/tracking.md, look-alikes)
            "appearance_margin": run_.appearance_margin,
            "appearance_confusion": run_.appearance_confusion,
            "appearance_informative": run_.appearance_informative,
            "appearance_misleading": run_.appearance_misleading,
        }
    )
    if args.embeddings:
        result["embeddings"] = str(args.embeddings)
    if args.save_embeddings:
        result["saved_embeddings"] = str(args.save_embeddings)
    if args.out:
        result["results"] = str(args.out)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{info.name}: {run_.frames} frames, tracker {run_.ms_per_frame:.3f} ms/frame, embedding {kind}"
        )
        print(f"  scored as {protocol.name}: {protocol.reason}")
        if inference.get("inference"):
            print(f"  models ran on {inference['inference']} in {image_s:.1f} s")
        for k in METRIC_KEYS:
            v = result[k]
            print(f"  {k:>5}: {v:.2f}" if isinstance(v, float) else f"  {k:>5}: {v}")
        if args.out:
            print(f"results written to {args.out}")
    return 0


def _embedding_meta(args: argparse.Namespace, mode: str, reid: Any, sequence: str) -> dict[str, str]:
    """What an embeddings file records about how it was made."""
    from tracker_core.evaluation.mot_io import ScoreRule
    from tracker_core.reid import file_sha256

    if mode == "color":
        from tracker_core.evaluation.image_source import color_model_name

        name, sha = color_model_name(), ""
    else:
        model = args.reid_model if mode == "reid" else args.encoder
        name, sha = Path(model).name, reid.sha256 if reid is not None else file_sha256(model)
    return {
        "kind": mode,
        "model": name,
        "model_sha256": sha,
        "detections": str(args.det) if args.det else f"detector {args.weights}",
        "detections_sha256": file_sha256(args.det) if args.det else "",
        "sequence": sequence,
        "score_rule": ScoreRule.from_flags(args.score_scale, args.score_clip).describe()
        + (f", min score {args.min_score:g}" if args.min_score else ""),
        "input_spec": json.dumps(reid.spec.to_dict()) if reid is not None else "",
    }
