"""Score MOTChallenge result files with TrackEval (HOTA, CLEAR, Identity), each benchmark by its own protocol.

TrackEval wants a fixed folder layout (``GT/<seq>/gt/gt.txt`` + ``seqinfo.ini``, ``TRACKERS/<name>/data/<seq>.txt``);
we build it in a temporary directory so the caller's folders are never written to.

Protocols (TrackEval's ``MotChallenge2DBox``), chosen per sequence from the data by :func:`choose_protocol` or given:

- ``mot17`` / ``mot20``: ``BENCHMARK`` MOT17 / MOT20 with ``DO_PREPROC`` on, the official MOTChallenge scoring of
  MOT16/17/20: ground-truth rows with flag (column 7) 0 are ignored, only class 1 (pedestrian) is scored, and a
  tracker box matched (IoU >= 0.5) to a distractor (class 2 person on vehicle, 7 static person, 8 distractor,
  12 reflection; MOT20 also 6 non-motorised vehicle) is removed before scoring, so it is neither a TP nor an FP.
- ``mot15``: ``BENCHMARK`` MOT15, no preprocessing: every ground-truth row with flag != 0 counts. MOT15 data
  (2DMOT2015, PETS09-S2L1) has no classes: its columns 8-10 are world coordinates or -1.

One TrackEval call can score many sequences (:func:`evaluate_sequences`); its ``COMBINED_SEQ`` figures are
TrackEval's own combination (HOTA from the summed per-alpha TP/FN/FP and association scores, CLEAR and Identity from
summed counts), not a mean of per-sequence figures. Each sequence's raw TrackEval fields can be kept
(:func:`raw_to_json`) and combined later with others (:func:`combine_raw`), so cached results need no re-scoring.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import read_gt, read_seqinfo

METRIC_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "MT", "ML")
FIGURE_KEYS = (*METRIC_KEYS, "FP", "FN")
PROTOCOLS = ("mot15", "mot17", "mot20")

# protocol -> (TrackEval BENCHMARK, DO_PREPROC)
_TRACKEVAL_SETTINGS = {"mot15": ("MOT15", False), "mot17": ("MOT17", True), "mot20": ("MOT20", True)}
_METRIC_NAMES = ("HOTA", "CLEAR", "Identity")


@dataclass(frozen=True)
class ProtocolChoice:
    """The scoring protocol of a sequence and why it was chosen (printed by ``eval-mot`` and ``bench mot``)."""

    name: str  # mot15 | mot17 | mot20
    reason: str


def gt_has_classes(gt: np.ndarray) -> bool:
    """Whether ground-truth rows carry MOT17-style classes: column 8 holds whole numbers in TrackEval's class ids
    1..13 on every row (MOT15 has -1 or world coordinates there)."""
    if gt.shape[0] == 0 or gt.shape[1] < 8:
        return False
    cls = gt[:, 7]
    return bool(np.all(cls == np.round(cls)) and np.all((cls >= 1) & (cls <= 13)))


def choose_protocol(seq_dir: str | Path, protocol: str = "auto") -> ProtocolChoice:
    """The protocol to score ``seq_dir`` with: ``protocol`` when given (``mot15``/``mot17``/``mot20``), else chosen
    from the data.

    ``auto``: ground truth without classes (column 8 not class ids 1..13 on every row) -> ``mot15``; with classes ->
    ``mot20`` when the sequence or its folder is named MOT20, else ``mot17`` (MOT16/17, and DanceTrack, whose
    official script is TrackEval's MOT17 default: its gt is all class 1, flag 1, so the preprocessing removes
    nothing and the figures equal MOT15 mode's). ``mot17``/``mot20`` on ground truth without classes is an
    ``InvalidInputError`` (TrackEval would read world coordinates as classes).
    """
    p = protocol.strip().lower()
    if p not in ("auto", *PROTOCOLS):
        raise InvalidInputError(f"--protocol must be auto, mot15, mot17 or mot20, got {protocol!r}")
    seq_dir = Path(seq_dir)
    gt_file = seq_dir / "gt" / "gt.txt"
    if not gt_file.is_file():
        raise NotFoundError(f"{gt_file} not found: the sequence has no ground truth to score against")
    classes = gt_has_classes(read_gt(gt_file))
    if p != "auto":
        if p != "mot15" and not classes:
            raise InvalidInputError(
                f"--protocol {p} needs MOT17-style ground truth (class ids 1..13 in column 8); {gt_file} has "
                "none (MOT15 layout): use --protocol mot15 or auto"
            )
        return ProtocolChoice(p, "given (--protocol)")
    if not classes:
        return ProtocolChoice("mot15", "gt has no class column (MOT15 layout): every flag-1 row counts")
    names = f"{read_seqinfo(seq_dir).name} {seq_dir.resolve().name} {seq_dir.resolve().parent.name}".upper()
    if "MOT20" in names:
        return ProtocolChoice("mot20", "MOT20 sequence with classes: official MOT20 preprocessing")
    return ProtocolChoice(
        "mot17",
        "gt has MOT17-style classes: official MOT17 preprocessing (distractors removed, flag 0 ignored)",
    )


def _trackeval() -> Any:
    try:
        import trackeval
    except ImportError:  # pragma: no cover - trackeval is in the dev extra
        raise NotFoundError("TrackEval is not installed: pip install 'roitrack[dev]' (trackeval)") from None
    return trackeval


def _metrics(trackeval: Any) -> list[Any]:
    quiet = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]


def figures(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The reported figures from one TrackEval result (``{HOTA: {...}, CLEAR: {...}, Identity: {...}}``):
    HOTA, DetA, AssA, MOTA, IDF1 in percent; IDSW, MT, ML, FP, FN counts."""
    h, c, i = raw["HOTA"], raw["CLEAR"], raw["Identity"]
    return {
        "HOTA": 100.0 * float(np.mean(h["HOTA"])),
        "DetA": 100.0 * float(np.mean(h["DetA"])),
        "AssA": 100.0 * float(np.mean(h["AssA"])),
        "MOTA": 100.0 * float(c["MOTA"]),
        "IDF1": 100.0 * float(i["IDF1"]),
        "IDSW": int(c["IDSW"]),
        "MT": int(c["MT"]),
        "ML": int(c["ML"]),
        "FP": int(c["CLR_FP"]),
        "FN": int(c["CLR_FN"]),
    }


def raw_to_json(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One sequence's raw TrackEval fields as plain JSON values (arrays -> lists)."""
    out: dict[str, dict[str, Any]] = {}
    for metric in _METRIC_NAMES:
        out[metric] = {
            k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else float(v))
            for k, v in raw[metric].items()
        }
    return out


def raw_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Inverse of :func:`raw_to_json` (lists -> float arrays); ``InvalidInputError`` when malformed."""
    try:
        return {
            m: {
                k: (np.asarray(v, dtype=np.float64) if isinstance(v, list | np.ndarray) else float(v))
                for k, v in data[m].items()
            }
            for m in _METRIC_NAMES
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"not a stored TrackEval result: {exc}") from None


def combine_raw(per_seq: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, float]:
    """Combined figures of several sequences' raw TrackEval results (``{seq: raw}``) by TrackEval's own
    ``combine_sequences`` - the ``COMBINED_SEQ`` figures one call over those sequences gives. ``raw`` may be the
    JSON form (:func:`raw_to_json`)."""
    if not per_seq:
        raise InvalidInputError("no sequences to combine")
    trackeval = _trackeval()
    per_seq = {s: raw_from_json(r) for s, r in per_seq.items()}
    combined = {}
    for metric in _metrics(trackeval):
        name = metric.get_name()
        combined[name] = metric.combine_sequences({s: r[name] for s, r in per_seq.items()})
    return figures(combined)


@dataclass(frozen=True)
class TrackerScores:
    """One tracker's scores over a group of sequences: TrackEval's combined figures, each sequence's figures and
    each sequence's raw fields (for :func:`combine_raw`)."""

    combined: dict[str, float]
    sequences: dict[str, dict[str, float]]
    raw: dict[str, dict[str, dict[str, Any]]]


def evaluate_sequences(
    seq_dirs: Sequence[str | Path],
    results: Mapping[str, Mapping[str, str | Path]],
    protocol: str,
) -> dict[str, TrackerScores]:
    """Score ``results`` (``{tracker: {sequence name: results.txt}}``) over the sequences ``seq_dirs`` in one
    TrackEval call under ``protocol`` (``mot15``/``mot17``/``mot20``; see :func:`choose_protocol`).

    Every tracker must have a file for every sequence. Returns ``{tracker: TrackerScores}``.
    """
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if not results:
        raise InvalidInputError("no result files to evaluate")
    if not seq_dirs:
        raise InvalidInputError("no sequences to evaluate")
    trackeval = _trackeval()
    infos = [(Path(d), read_seqinfo(d)) for d in seq_dirs]
    names = [info.name for _, info in infos]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"sequence names must be unique within one evaluation, got {names}")
    benchmark, preproc = _TRACKEVAL_SETTINGS[protocol]
    with tempfile.TemporaryDirectory(prefix="roitrack-eval-") as tmp:
        root = Path(tmp)
        for seq_dir, info in infos:
            gt_file = seq_dir / "gt" / "gt.txt"
            if not gt_file.is_file():
                raise NotFoundError(f"{gt_file} not found: the sequence has no ground truth to score against")
            (root / "gt" / info.name / "gt").mkdir(parents=True)
            shutil.copyfile(gt_file, root / "gt" / info.name / "gt" / "gt.txt")
            shutil.copyfile(seq_dir / "seqinfo.ini", root / "gt" / info.name / "seqinfo.ini")
        safe_names = []
        for i, (tracker, files) in enumerate(results.items()):
            safe = f"t{i}"
            (root / "trackers" / safe / "data").mkdir(parents=True)
            for name in names:
                if name not in files:
                    raise InvalidInputError(f"tracker {tracker!r} has no results for sequence {name}")
                p = Path(files[name])
                if not p.is_file():
                    raise NotFoundError(f"results file {p} not found")
                shutil.copyfile(p, root / "trackers" / safe / "data" / f"{name}.txt")
            safe_names.append((safe, tracker))
        eval_cfg = {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "PRINT_ONLY_COMBINED": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "DISPLAY_LESS_PROGRESS": True,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_EMPTY_CLASSES": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "LOG_ON_ERROR": None,
            "BREAK_ON_ERROR": True,
        }
        ds_cfg = {
            "GT_FOLDER": str(root / "gt"),
            "TRACKERS_FOLDER": str(root / "trackers"),
            "OUTPUT_FOLDER": str(root / "out"),
            "TRACKERS_TO_EVAL": [safe for safe, _ in safe_names],
            "CLASSES_TO_EVAL": ["pedestrian"],
            "BENCHMARK": benchmark,
            "SPLIT_TO_EVAL": "train",
            "DO_PREPROC": preproc,
            "PRINT_CONFIG": False,
            "TRACKER_SUB_FOLDER": "data",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {info.name: info.seq_length for _, info in infos},
        }
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                evaluator = trackeval.Evaluator(eval_cfg)
                dataset = trackeval.datasets.MotChallenge2DBox(ds_cfg)
                raw, _ = evaluator.evaluate([dataset], _metrics(trackeval))
        except trackeval.utils.TrackEvalException as exc:
            raise InvalidInputError(
                f"TrackEval rejected the results or ground truth of {', '.join(names)} ({protocol}): {exc}"
            ) from None
    out: dict[str, TrackerScores] = {}
    per_tracker = raw["MotChallenge2DBox"]
    for safe, tracker in safe_names:
        res = per_tracker[safe]
        if isinstance(res, str) or "COMBINED_SEQ" not in res:  # TrackEval reports a failure as a string
            raise InvalidInputError(f"TrackEval could not score {tracker}: {res}")
        raws = {n: {m: res[n]["pedestrian"][m] for m in _METRIC_NAMES} for n in names}
        out[tracker] = TrackerScores(
            combined=figures(res["COMBINED_SEQ"]["pedestrian"]),
            sequences={n: figures(r) for n, r in raws.items()},
            raw={n: raw_to_json(r) for n, r in raws.items()},
        )
    return out


def evaluate_results(
    seq_dir: str | Path, results: Mapping[str, str | Path], protocol: str = "auto"
) -> dict[str, dict[str, float]]:
    """Score result files ``{tracker_name: results.txt}`` against ``seq_dir/gt/gt.txt``.

    ``protocol``: ``auto`` (chosen from the data, :func:`choose_protocol`), ``mot15``, ``mot17`` or ``mot20``.
    Returns ``{tracker_name: {HOTA, DetA, AssA, MOTA, IDF1 (percent), IDSW, MT, ML, FP, FN (counts)}}``.
    """
    if not results:
        raise InvalidInputError("no result files to evaluate")
    choice = choose_protocol(seq_dir, protocol)
    name = read_seqinfo(seq_dir).name
    scores = evaluate_sequences([seq_dir], {t: {name: p} for t, p in results.items()}, choice.name)
    return {t: s.sequences[name] for t, s in scores.items()}
