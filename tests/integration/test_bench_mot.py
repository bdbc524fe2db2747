"""Each benchmark's own scoring protocol (TrackEval MOT17/MOT20 preprocessing vs MOT15) and ``roitrack bench mot``:
grouping, combined + per-sequence figures, ranks, score-rule detection and the peer cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roitrack_cli.main import main
from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import choose_protocol, combine_raw, evaluate_results, evaluate_sequences

pytestmark = pytest.mark.timeout(300)


def _seq(root: Path, name: str, gt: list[str], det: list[str] | None = None, n: int = 3) -> Path:
    d = root / name
    (d / "gt").mkdir(parents=True)
    (d / "det").mkdir()
    (d / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (d / "det" / "det.txt").write_text("\n".join(det or ["1,-1,10,10,40,100,0.9,-1,-1,-1"]) + "\n")
    (d / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={n}\nimWidth=640\nimHeight=480\nimExt=.jpg\n"
    )
    return d


def test_mot17_protocol_removes_distractors_mot15_does_not(tmp_path: Path) -> None:
    """A pedestrian (class 1) and a static person (class 7, a distractor, flag 0 as in MOT17's gt) in every frame;
    the tracker follows both. MOT17's preprocessing drops the tracker box matched to the distractor: no FP. MOT15
    mode has no classes: the flag-0 row is not scored and the box on it is an FP."""
    gt, res = [], []
    for f in (1, 2, 3):
        gt += [
            f"{f},1,100,100,50,120,1,1,1.0",
            f"{f},2,300,100,50,120,0,7,1.0",
            f"{f},3,500,50,40,90,0,1,1.0",
        ]
        res += [f"{f},1,100,100,50,120,0.9,-1,-1,-1", f"{f},2,300,100,50,120,0.9,-1,-1,-1"]
    seq = _seq(tmp_path, "MOT17-99", gt)
    out = tmp_path / "res.txt"
    out.write_text("\n".join(res) + "\n")
    auto = choose_protocol(seq)
    assert auto.name == "mot17" and "class" in auto.reason
    mot17 = evaluate_results(seq, {"t": out})["t"]
    mot15 = evaluate_results(seq, {"t": out}, "mot15")["t"]
    # MOT17: the flag-0 pedestrian is ignored, the box on the distractor removed: a perfect score
    assert (mot17["FP"], mot17["FN"], mot17["MOTA"]) == (0, 0, 100.0)
    # MOT15: the same box counts as a false positive in every frame
    assert (mot15["FP"], mot15["FN"]) == (3, 0) and mot15["MOTA"] < 100.0


def test_protocol_choice_from_the_data(tmp_path: Path, pets_sequence: Path) -> None:
    mot15 = _seq(tmp_path, "ADL-Rundle-X", ["1,1,10,10,40,100,1,-1,-1,-1"])
    assert choose_protocol(mot15).name == "mot15"
    assert choose_protocol(pets_sequence).name == "mot15"  # world coordinates in columns 8-10
    mot20 = _seq(tmp_path / "MOT20-train", "MOT20-01", ["1,1,10,10,40,100,1,1,1.0"])
    assert choose_protocol(mot20).name == "mot20"
    assert choose_protocol(mot20, "mot15").name == "mot15"
    with pytest.raises(InvalidInputError, match="--protocol mot17"):
        choose_protocol(mot15, "mot17")


def test_eval_mot_prints_the_protocol(mot_dev: Path, capsys) -> None:
    seq = mot_dev / "MOT17-val" / "MOT17-10-val"
    base = ["eval-mot", "--seq", str(seq), "--det", str(seq / "det" / "det.txt"), "--json"]
    assert main(base) == 0
    auto = json.loads(capsys.readouterr().out)
    assert main([*base, "--protocol", "mot15"]) == 0
    m15 = json.loads(capsys.readouterr().out)
    assert auto["protocol"] == "mot17" and m15["protocol"] == "mot15"
    # MOT17-10's distractors: official scoring removes the boxes on them (fewer FP)
    assert auto["FP"] < m15["FP"] and auto["MOTA"] > m15["MOTA"]


def _cut(src: Path, dst: Path, frames: int, scale: float = 1.0) -> Path:
    """The first ``frames`` frames of a sequence (no images; det scores multiplied by ``scale``)."""
    dst.mkdir(parents=True)
    for sub in ("gt", "det"):
        rows = [
            r for r in (src / sub / f"{sub}.txt").read_text().splitlines() if int(r.split(",")[0]) <= frames
        ]
        if sub == "det" and scale != 1.0:
            rows = [
                ",".join([*r.split(",")[:6], f"{float(r.split(',')[6]) * scale:.3f}", *r.split(",")[7:]])
                for r in rows
            ]
        (dst / sub).mkdir()
        (dst / sub / f"{sub}.txt").write_text("\n".join(rows) + "\n")
    ini = (src / "seqinfo.ini").read_text().splitlines()
    (dst / "seqinfo.ini").write_text(
        "\n".join(f"seqLength={frames}" if ln.startswith("seqLength") else ln for ln in ini) + "\n"
    )
    if (src / "gmc.txt").is_file():
        rows = [r for r in (src / "gmc.txt").read_text().splitlines() if int(float(r.split()[0])) < frames]
        (dst / "gmc.txt").write_text("\n".join(rows) + "\n")
    return dst


def test_bench_mot_groups_scores_and_caches(mot_dev: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _cut(mot_dev / "MOT17-val" / "MOT17-10-val", root / "MOT17-val" / "MOT17-10-val", 40)
    _cut(mot_dev / "MOT17-val" / "MOT17-09-val", root / "MOT17-val" / "MOT17-09-val", 40)
    lone = _cut(
        mot_dev / "2DMOT2015" / "TUD-Campus", tmp_path / "TUD-Campus-cut", 30, scale=100.0
    )  # 0-100 scores
    cache = tmp_path / "cache"
    args = ["bench", "mot", str(root), str(lone), "--trackers", "trackers_SORT", "supervision_ByteTrack"]
    args += ["--out", str(tmp_path / "out" / "mot"), "--cache", str(cache), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"groups", "sequences", "trackers", "missing", "cache"} <= first.keys()
    groups = {g["group"]: g for g in first["groups"]}
    assert set(groups) == {"MOT17-val", "TUD-Campus-cut"}
    assert groups["MOT17-val"]["protocol"] == "mot17" and groups["TUD-Campus-cut"]["protocol"] == "mot15"
    assert sorted(groups["MOT17-val"]["sequences"]) == ["MOT17-09-val", "MOT17-10-val"]
    assert groups["MOT17-val"]["camera_motion_files"] == [
        "MOT17-09-val",
        "MOT17-10-val",
    ]  # both bring gmc.txt
    assert any("/ 100" in s for s in groups["TUD-Campus-cut"]["score_rules"])  # 0-100 scores detected
    rows = groups["MOT17-val"]["rows"]
    assert [r["rank"] for r in rows] == [1, 2, 3] and {r["key"] for r in rows} == {
        "ours",
        "trackers_SORT",
        "supervision_ByteTrack",
    }
    for r in rows:
        assert {
            "HOTA",
            "DetA",
            "AssA",
            "MOTA",
            "IDF1",
            "IDSW",
            "MT",
            "ML",
            "FP",
            "FN",
            "ms_per_frame",
        } <= r.keys()
    assert rows == sorted(rows, key=lambda r: -r["HOTA"])
    assert len(first["sequences"]) == 3 and all(len(s["rows"]) == 3 for s in first["sequences"])
    # the combined figures are TrackEval's combination of the per-sequence ones (one call over the group)
    seqs = [root / "MOT17-val" / n for n in ("MOT17-09-val", "MOT17-10-val")]
    ours = {s["sequence"]: s for s in first["sequences"]}
    assert (tmp_path / "out" / "mot.md").read_text().count("| rank |") == 2
    assert json.loads((tmp_path / "out" / "mot.json").read_text())["groups"][0]["rows"]
    # second run: the peers come from the cache (results and TrackEval fields), ours is rerun
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    for g in second["groups"]:
        for r in g["rows"]:
            assert r["cached"] == (r["key"] != "ours")
    assert [(r["key"], r["HOTA"], r["IDF1"]) for r in second["groups"][0]["rows"]] == [
        (r["key"], r["HOTA"], r["IDF1"]) for r in first["groups"][0]["rows"]
    ]
    cached = next(s["rows"] for s in second["sequences"] if s["sequence"] == "MOT17-10-val")
    peer_file = next(r["results"] for r in cached if r["key"] == "trackers_SORT")
    assert Path(peer_file).is_file() and str(cache) in peer_file
    scored = evaluate_sequences(
        seqs,
        {
            "sort": {
                n: next(r["results"] for r in ours[n]["rows"] if r["key"] == "trackers_SORT")
                for n in ours
                if n.startswith("MOT17")
            }
        },
        "mot17",
    )["sort"]
    sort_row = next(r for r in second["groups"][0]["rows"] if r["key"] == "trackers_SORT")
    assert sort_row["HOTA"] == pytest.approx(scored.combined["HOTA"])
    assert combine_raw(scored.raw)["IDF1"] == pytest.approx(scored.combined["IDF1"])
