"""Sequences under the roots, their groups, protocols and detection score rules."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation import ProtocolChoice, ScoreRule, SeqInfo, choose_protocol, read_seqinfo


@dataclass(frozen=True)
class SeqEntry:
    """One sequence of the benchmark: its folder, seqinfo, group, protocol, detections file, score rule and the
    camera-motion file it brings (``None``: none, or ``--gmc off``)."""

    path: Path
    info: SeqInfo
    group: str
    protocol: ProtocolChoice
    det: Path
    det_sha256: str
    score_rule: ScoreRule
    score_note: str
    gmc: Path | None


def is_sequence(path: Path, det_name: str = "det.txt") -> bool:
    """A benchmark sequence: ``seqinfo.ini``, ``det/<det_name>`` and ``gt/gt.txt``."""
    return (
        (path / "seqinfo.ini").is_file()
        and (path / "det" / det_name).is_file()
        and (path / "gt" / "gt.txt").is_file()
    )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score_rule_for(det: Path, scale: str = "auto", clip: bool = False) -> tuple[ScoreRule, str]:
    """The score rule of one detections file: ``auto`` divides by 100 and clips when the file's largest score is
    above 1 (MOT15's ACF ``det_acf``, PETS09: a 0-100 scale, dipping below 0), else keeps the scores (clipping only
    with ``clip``); a number or ``max`` is ``--score-scale``'s rule. Returns the rule and a note saying what was
    done."""
    if scale.strip().lower() != "auto":
        rule = ScoreRule.from_flags(scale, clip)
        return rule, rule.describe()
    raw = (
        np.loadtxt(det, delimiter=",", ndmin=2, usecols=(6,), dtype=np.float64)
        if det.stat().st_size
        else None
    )
    top = float(raw.max()) if raw is not None and raw.size else 0.0
    low = float(raw.min()) if raw is not None and raw.size else 0.0
    if top > 1.0:
        return ScoreRule(100.0, True), f"scores / 100, clipped to [0, 1] (auto: largest {top:g} > 1)"
    if clip or low < 0.0:
        return ScoreRule(1.0, True), f"scores clipped to [0, 1] (auto: range {low:g}..{top:g})"
    return ScoreRule(), "scores as given (auto: already in [0, 1])"


def find_sequences(roots: Sequence[str | Path], det_name: str = "det.txt") -> list[tuple[Path, str]]:
    """``(sequence folder, group)`` for every sequence under ``roots``, sorted: a root that is a sequence is its own
    group (named after its folder); otherwise every sequence found below it belongs to the group named after its
    parent folder."""
    found: dict[Path, str] = {}
    for r in roots:
        root = Path(r)
        if not root.is_dir():
            raise NotFoundError(f"{root} is not a folder")
        if is_sequence(root, det_name):
            found[root.resolve()] = root.resolve().name
            continue
        for ini in sorted(root.rglob("seqinfo.ini")):
            seq = ini.parent
            if is_sequence(seq, det_name):
                found[seq.resolve()] = seq.resolve().parent.name
    if not found:
        raise InvalidInputError(
            f"no sequences (seqinfo.ini + det/{det_name} + gt/gt.txt) under {', '.join(str(r) for r in roots)}"
        )
    return sorted(found.items(), key=lambda kv: (kv[1], kv[0].name))


def discover(
    roots: Sequence[str | Path],
    protocol: str = "auto",
    score_scale: str = "auto",
    score_clip: bool = False,
    gmc: str = "auto",
    det_name: str = "det.txt",
) -> list[SeqEntry]:
    """Every sequence under ``roots`` with its group, protocol, score rule and camera-motion file (``gmc``: ``auto``
    uses a sequence's ``gmc.txt`` when it has one, ``off`` none). A group whose sequences need different protocols
    is split into ``group [protocol]`` groups. Sequence names must be unique within a group."""
    entries = []
    for path, group in find_sequences(roots, det_name):
        det = path / "det" / det_name
        rule, note = score_rule_for(det, score_scale, score_clip)
        g = path / "gmc.txt"
        entries.append(
            SeqEntry(
                path=path,
                info=read_seqinfo(path),
                group=group,
                protocol=choose_protocol(path, protocol),
                det=det,
                det_sha256=file_sha256(det),
                score_rule=rule,
                score_note=note,
                gmc=g if gmc == "auto" and g.is_file() else None,
            )
        )
    by_group: dict[str, set[str]] = {}
    for e in entries:
        by_group.setdefault(e.group, set()).add(e.protocol.name)
    out = []
    for e in entries:
        if len(by_group[e.group]) > 1:
            e = SeqEntry(**{**e.__dict__, "group": f"{e.group} [{e.protocol.name}]"})
        out.append(e)
    seen: dict[tuple[str, str], Path] = {}
    for e in out:
        key = (e.group, e.info.name)
        if key in seen:
            raise InvalidInputError(
                f"two sequences named {e.info.name} in group {e.group}: {seen[key]} and {e.path}"
            )
        seen[key] = e.path
    return out
