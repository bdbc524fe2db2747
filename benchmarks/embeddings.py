"""``roitrack bench embeddings``: the association with real and control embeddings, per span and frame rate.

Given embedding files of a whole sequence (``eval-mot --save-embeddings``: a ReID model, the ROI encoder, the colour
histogram, ...), it cuts the sequence into time spans (``--frames``) and lower frame rates (``--steps``: every N-th
frame, as ``roitrack slice-seq --step N``), takes each file's rows of the kept frames (no recomputation; each slice
is checked box for box against the slice's own detections) and tracks every slice

- with motion only,
- with each file's embeddings,
- with the inert controls: ``random`` (a fresh random vector per detection, ``--random-seeds`` seeds) and
  ``constant`` (one vector for all),
- with the oracle's ground-truth embeddings (``benchmarks.oracle``): ``perfect`` and ``--oracle-wrong`` (a share of
  wrong identities), ``--oracle-seeds`` seeds each,

scoring every run of a slice with one TrackEval call. The table gives IDF1 / IDSW per embedding and slice, the
change against motion only, whether a run's result file is identical to motion only's, and checks the targets of
issue 21 (``targets`` in the JSON). Writes ``<out>/<name>.json`` and ``<out>/<name>.md``. See docs/tracking.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tracker_core.tracking import TrackerConfig

KEYS = ("HOTA", "IDF1", "IDSW", "MOTA")


def _lines_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _parse_named(items: Sequence[str]) -> dict[str, Path]:
    from tracker_core.errors import InvalidInputError

    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidInputError(f"--embeddings takes NAME=FILE.npz, got {item!r}")
        if name in out or name in ("motion", "random", "constant", "perfect") or name.startswith("wrong"):
            raise InvalidInputError(f"--embeddings: the name {name!r} is used twice or reserved")
        out[name] = Path(path)
    return out


def run(
    seq: str | Path,
    files: dict[str, Path],
    frame_ranges: Sequence[str] = ("1-400",),
    steps: Sequence[int] = (1,),
    *,
    random_seeds: int = 10,
    oracle_seeds: int = 10,
    oracle_wrong: Sequence[float] = (0.3,),
    score_scale: float = 100.0,
    score_clip: bool = False,
    config: TrackerConfig | None = None,
    dim: int = 128,
) -> dict[str, Any]:
    """Every (span, step) slice of ``seq`` tracked with motion only, each file of ``files`` (name -> npz of the
    whole sequence), random / constant controls and the oracle; see the module docstring."""
    from benchmarks.oracle import EmbeddingSpec, gt_identities, oracle_embeddings
    from tracker_core.evaluation import (
        evaluate_results,
        read_detections,
        read_gt,
        read_seqinfo,
        track_sequence,
        write_results,
    )
    from tracker_core.evaluation.embedding_file import check_matches, load_embeddings
    from tracker_core.evaluation.mot_slice import parse_frame_range, slice_sequence
    from tracker_core.tracking import DEFAULT_CONFIG

    config = config or DEFAULT_CONFIG
    seq = Path(seq)
    info = read_seqinfo(seq)
    full = read_detections(seq / "det" / "det.txt", info.seq_length, score_scale, score_clip=score_clip)
    loaded = {}
    for name, path in files.items():
        ef = load_embeddings(path)
        check_matches(ef, full, str(path), str(seq / "det" / "det.txt"))
        loaded[name] = ef
    slices = []
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-emb-") as tmp:
        for step in steps:
            for text in frame_ranges:
                first, last = parse_frame_range(text)
                path = slice_sequence(seq, first, last, Path(tmp) / f"f{first}-{last}-s{step}", step=step)
                sinfo = read_seqinfo(path)
                frames = read_detections(
                    path / "det" / "det.txt", sinfo.seq_length, score_scale, score_clip=score_clip
                )
                kept = list(range(first - 1, min(last, info.seq_length), step))
                ids = gt_identities(frames, read_gt(path / "gt" / "gt.txt"))
                runs: dict[str, list[tuple[str, Any]]] = {"motion": [("motion", None)]}
                for name, ef in loaded.items():
                    sub = [ef.embeddings[i] for i in kept]
                    sliced = type(ef)(sub, [ef.boxes[i] for i in kept], ef.meta)
                    check_matches(sliced, frames, f"{name} rows of frames {text} step {step}", str(path))
                    runs[name] = [(name, sub)]
                runs["random"] = [
                    (f"random-s{k}", oracle_embeddings(ids, EmbeddingSpec("random"), k, dim))
                    for k in range(random_seeds)
                ]
                runs["constant"] = [("constant", oracle_embeddings(ids, EmbeddingSpec("constant"), 0, dim))]
                runs["perfect"] = [
                    (f"perfect-s{k}", oracle_embeddings(ids, EmbeddingSpec("oracle"), k, dim))
                    for k in range(oracle_seeds)
                ]
                for w in oracle_wrong:
                    runs[f"wrong {w:g}"] = [
                        (f"wrong{w:g}-s{k}", oracle_embeddings(ids, EmbeddingSpec("oracle", wrong=w), k, dim))
                        for k in range(oracle_seeds)
                    ]
                runs = {
                    label: group for label, group in runs.items() if group
                }  # --random-seeds 0 etc.: no row
                lines: dict[str, list[str]] = {}
                judged: dict[str, dict[str, Any]] = {}
                for group in runs.values():
                    for key, emb in group:
                        tracked = track_sequence(frames, sinfo.frame_rate, config, emb)
                        lines[key] = tracked.lines
                        judged[key] = {
                            "margin": tracked.appearance_margin,
                            "misleading": tracked.appearance_misleading,
                            "informative": tracked.appearance_informative,
                        }
                res_dir = Path(tmp) / f"res-{first}-{last}-s{step}"
                res_dir.mkdir()
                paths = {}
                for key, ls in lines.items():
                    paths[key] = res_dir / f"{key}.txt"
                    write_results(paths[key], ls)
                scores = evaluate_results(path, paths)
                rows: list[dict[str, Any]] = []
                motion_lines = lines["motion"]
                for label, group in runs.items():
                    keys = [k for k, _ in group]
                    per = {m: [float(scores[k][m]) for k in keys] for m in KEYS}
                    rows.append(
                        {
                            "label": label,
                            "runs": len(keys),
                            **{m: float(np.mean(v)) for m, v in per.items()},
                            "per_run": per,
                            "identical_to_motion": sum(lines[k] == motion_lines for k in keys),
                            "judged": [judged[k] for k in keys] if label != "motion" else None,
                        }
                    )
                motion = rows[0]
                for r in rows:
                    r["IDF1_vs_motion"] = r["IDF1"] - motion["IDF1"]
                    r["worst_IDF1_vs_motion"] = min(r["per_run"]["IDF1"]) - motion["IDF1"]
                    r["worst_IDSW_vs_motion"] = max(r["per_run"]["IDSW"]) - motion["IDSW"]
                slices.append(
                    {
                        "span": f"{first}-{last}",
                        "step": step,
                        "frames": sinfo.seq_length,
                        "frame_rate": sinfo.frame_rate,
                        "motion_results_sha256": _lines_sha256(motion_lines),
                        "rows": rows,
                    }
                )
    return {
        "source": str(seq),
        "files": {k: str(v) for k, v in files.items()},
        "models": {k: ef.meta.get("model", "") for k, ef in loaded.items()},
        "score_scale": score_scale,
        "score_clip": score_clip,
        "random_seeds": random_seeds,
        "oracle_seeds": oracle_seeds,
        "dim": dim,
        "config": "DEFAULT_CONFIG" if config == DEFAULT_CONFIG else "custom",
        "slices": slices,
        "targets": targets(slices, list(files)),
    }


def targets(slices: list[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Issue 21's checks on these slices: for every embedding, the worst IDF1 change against motion only (per run:
    every seed of random / oracle), whether it ever has more ID switches, and whether random / constant runs are
    identical to motion only."""
    out: dict[str, Any] = {}
    wrong = sorted({r["label"] for s in slices for r in s["rows"] if r["label"].startswith("wrong")})
    labels = [*names, "random", "constant", "perfect", *wrong]
    for label in labels:
        cells = [(s, r) for s in slices for r in s["rows"] if r["label"] == label]
        if not cells:
            continue
        out[label] = {
            "worst_IDF1_vs_motion": round(min(r["worst_IDF1_vs_motion"] for _, r in cells), 3),
            "worst_mean_IDF1_vs_motion": round(min(r["IDF1_vs_motion"] for _, r in cells), 3),
            "best_mean_IDF1_vs_motion": round(max(r["IDF1_vs_motion"] for _, r in cells), 3),
            "more_IDSW_anywhere": any(r["worst_IDSW_vs_motion"] > 0 for _, r in cells),
            "identical_to_motion_everywhere": all(r["identical_to_motion"] == r["runs"] for _, r in cells),
        }
    return out


def _cell(r: dict[str, Any]) -> str:
    idsw = f"{r['IDSW']:.1f}".rstrip("0").rstrip(".")
    if r["label"] == "motion":
        return f"{r['IDF1']:.1f} ({idsw})"
    same = " =" if r["identical_to_motion"] == r["runs"] else ""
    return f"{r['IDF1']:.1f} ({idsw}) {r['IDF1_vs_motion'] + 0.0:+.1f}{same}"


def markdown(result: dict[str, Any]) -> str:
    """One table per step: IDF1 (IDSW) and the change against motion only, per embedding (rows) and span."""
    out = [
        "IDF1 (IDSW) and IDF1 change against motion only; `=`: every run's result file identical to motion "
        f"only's. random: mean of {result['random_seeds']} seeds; perfect / wrong: the oracle "
        f"(ground-truth identities), mean of {result['oracle_seeds']} seeds.",
        "",
    ]
    steps = sorted({s["step"] for s in result["slices"]})
    for step in steps:
        slices = [s for s in result["slices"] if s["step"] == step]
        rate = slices[0]["frame_rate"]
        out.append(
            f"### every {step}. frame ({rate:.3g} fps)\n"
            if step > 1
            else f"### every frame ({rate:.3g} fps)\n"
        )
        out.append(
            "| embeddings | " + " | ".join(f"{s['span']} ({s['frames']} frames)" for s in slices) + " |"
        )
        out.append("|---|" + "---:|" * len(slices))
        for label in [r["label"] for r in slices[0]["rows"]]:
            cells = [_cell(next(r for r in s["rows"] if r["label"] == label)) for s in slices]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        "Across every span and step (worst single run; random, perfect, wrong: every seed):",
        "",
        "| embeddings | worst IDF1 vs motion (run) | worst / best mean IDF1 vs motion | more IDSW anywhere | identical to motion everywhere |",
        "|---|---:|---:|---|---|",
    ]
    for label, t in result["targets"].items():
        out.append(
            f"| {label} | {t['worst_IDF1_vs_motion'] + 0.0:+.2f} | {t['worst_mean_IDF1_vs_motion'] + 0.0:+.2f} / "
            f"{t['best_mean_IDF1_vs_motion'] + 0.0:+.2f} | {'yes' if t['more_IDSW_anywhere'] else 'no'} | "
            f"{'yes' if t['identical_to_motion_everywhere'] else 'no'} |"
        )
    return "\n".join(out)


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--seq", required=True, help="MOTChallenge sequence folder (seqinfo.ini, gt/gt.txt, det/det.txt)")
    a(
        "--embeddings",
        nargs="*",
        default=[],
        metavar="NAME=FILE.npz",
        help="embedding files of the whole sequence (eval-mot --save-embeddings), one row each",
    )
    a("--frames", nargs="*", default=["1-400"], help="FIRST-LAST time spans (default 1-400)")
    a("--steps", nargs="*", type=int, default=[1], help="keep every N-th frame (slice-seq --step; default 1)")
    a("--random-seeds", type=int, default=10, help="seeds of the random control (default 10)")
    a("--oracle-seeds", type=int, default=10, help="seeds of the oracle rows (default 10; 0: none)")
    a("--oracle-wrong", nargs="*", type=float, default=[0.3], help="wrong-identity rates of the oracle rows")
    a("--score-scale", type=float, default=100.0, help="divide det scores by this (default 100, MOT15)")
    a("--score-clip", action="store_true", help="clip scaled scores to [0, 1] (PETS09's reach 138.9 / 100)")
    a("--dim", type=int, default=128, help="width of the random, constant and oracle vectors (default 128)")
    a("--config", help="JSON file of TrackerConfig overrides (default: DEFAULT_CONFIG)")
    a("--out", default="docs/bench", help="folder for <name>.json / .md (default docs/bench)")
    a("--name", default="embeddings", help="file name stem (default embeddings)")
    a("--no-write", action="store_true", help="do not write the JSON / Markdown files")
    a("--json", action="store_true", help="print one JSON object (else the Markdown tables)")


def command_line(args: argparse.Namespace) -> str:
    import shlex

    parts = ["--seq", args.seq, "--embeddings", *args.embeddings, "--frames", *args.frames]
    parts += ["--steps", *map(str, args.steps), "--random-seeds", str(args.random_seeds)]
    parts += [
        "--oracle-seeds",
        str(args.oracle_seeds),
        "--oracle-wrong",
        *(f"{w:g}" for w in args.oracle_wrong),
    ]
    parts += ["--score-scale", f"{args.score_scale:g}", *(["--score-clip"] if args.score_clip else [])]
    parts += ["--dim", str(args.dim), *(["--config", args.config] if args.config else [])]
    parts += ["--out", args.out, "--name", args.name]
    return "roitrack bench embeddings " + shlex.join(parts)


def main_args(args: argparse.Namespace) -> int:
    from tracker_core.errors import InvalidInputError
    from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig

    if args.random_seeds < 0 or args.oracle_seeds < 0 or args.dim < 2:
        raise InvalidInputError("--random-seeds and --oracle-seeds must be >= 0, --dim >= 2")
    if not args.steps or any(s < 1 for s in args.steps) or not args.frames:
        raise InvalidInputError("--steps must be whole numbers >= 1, and give at least one --frames span")
    if any(not 0 <= w <= 1 for w in args.oracle_wrong):
        raise InvalidInputError("--oracle-wrong rates must be in [0, 1]")
    config = TrackerConfig.from_json_file(args.config) if args.config else DEFAULT_CONFIG
    result = run(
        args.seq,
        _parse_named(args.embeddings),
        args.frames,
        args.steps,
        random_seeds=args.random_seeds,
        oracle_seeds=args.oracle_seeds,
        oracle_wrong=args.oracle_wrong,
        score_scale=args.score_scale,
        score_clip=args.score_clip,
        config=config,
        dim=args.dim,
    )
    result["command"] = command_line(args)
    table = f"Command: `{result['command']}`\n\n" + markdown(result)
    if not args.no_write:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / f"{args.name}.md").write_text(table + "\n")
    print(json.dumps(result) if args.json else table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.embeddings", description=__doc__.splitlines()[0]
    )
    configure(parser)
    return main_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
