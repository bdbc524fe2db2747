"""Score MOTChallenge result files with TrackEval (HOTA, CLEAR, Identity) on one sequence.

TrackEval wants a fixed folder layout (``GT/<seq>/gt/gt.txt`` + ``seqinfo.ini``, ``TRACKERS/<name>/data/<seq>.txt``);
we build it in a temporary directory so the caller's folders are never written to. The sequence is scored as
MOT15 without the MOT17 distractor preprocessing: every ground-truth row with flag (column 7) != 0 counts, which is
what MOT15 data such as PETS09-S2L1 needs (its columns 8-10 are world coordinates, not classes).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import read_seqinfo

METRIC_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "MT", "ML")


def evaluate_results(seq_dir: str | Path, results: Mapping[str, str | Path]) -> dict[str, dict[str, float]]:
    """Score result files ``{tracker_name: results.txt}`` against ``seq_dir/gt/gt.txt``.

    Returns ``{tracker_name: {HOTA, DetA, AssA, MOTA, IDF1 (percent), IDSW, MT, ML (counts)}}``.
    """
    try:
        import trackeval
    except ImportError:  # pragma: no cover - trackeval is in the dev extra
        raise NotFoundError("TrackEval is not installed: pip install 'roitrack[dev]' (trackeval)") from None
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    gt_file = seq_dir / "gt" / "gt.txt"
    if not gt_file.is_file():
        raise NotFoundError(f"{gt_file} not found: the sequence has no ground truth to score against")
    if not results:
        raise InvalidInputError("no result files to evaluate")
    seq = info.name
    with tempfile.TemporaryDirectory(prefix="roitrack-eval-") as tmp:
        root = Path(tmp)
        (root / "gt" / seq / "gt").mkdir(parents=True)
        shutil.copyfile(gt_file, root / "gt" / seq / "gt" / "gt.txt")
        shutil.copyfile(seq_dir / "seqinfo.ini", root / "gt" / seq / "seqinfo.ini")
        names = []
        for i, (name, path) in enumerate(results.items()):
            p = Path(path)
            if not p.is_file():
                raise NotFoundError(f"results file {p} not found")
            safe = f"t{i}"
            (root / "trackers" / safe / "data").mkdir(parents=True)
            shutil.copyfile(p, root / "trackers" / safe / "data" / f"{seq}.txt")
            names.append((safe, name))
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
            "TRACKERS_TO_EVAL": [safe for safe, _ in names],
            "CLASSES_TO_EVAL": ["pedestrian"],
            "BENCHMARK": "MOT15",
            "SPLIT_TO_EVAL": "train",
            "DO_PREPROC": False,
            "PRINT_CONFIG": False,
            "TRACKER_SUB_FOLDER": "data",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {seq: info.seq_length},
        }
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                quiet = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
                metrics = [
                    trackeval.metrics.HOTA(),
                    trackeval.metrics.CLEAR(quiet),
                    trackeval.metrics.Identity(quiet),
                ]
                evaluator = trackeval.Evaluator(eval_cfg)
                dataset = trackeval.datasets.MotChallenge2DBox(ds_cfg)
                raw, _ = evaluator.evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as exc:
            raise InvalidInputError(
                f"TrackEval rejected the results or ground truth of {seq}: {exc}"
            ) from None
    out: dict[str, dict[str, float]] = {}
    per_tracker = raw["MotChallenge2DBox"]
    for safe, name in names:
        r = per_tracker[safe][seq]["pedestrian"]
        out[name] = {
            "HOTA": 100.0 * float(r["HOTA"]["HOTA"].mean()),
            "DetA": 100.0 * float(r["HOTA"]["DetA"].mean()),
            "AssA": 100.0 * float(r["HOTA"]["AssA"].mean()),
            "MOTA": 100.0 * float(r["CLEAR"]["MOTA"]),
            "IDF1": 100.0 * float(r["Identity"]["IDF1"]),
            "IDSW": int(r["CLEAR"]["IDSW"]),
            "MT": int(r["CLEAR"]["MT"]),
            "ML": int(r["CLEAR"]["ML"]),
            "FP": int(r["CLEAR"]["CLR_FP"]),
            "FN": int(r["CLEAR"]["CLR_FN"]),
        }
    return out
