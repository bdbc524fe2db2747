"""The peers' results on disk: one folder per peer and sequence, keyed by what decides the result.

Key: peer key + library version + sequence name + detections file sha256 + score rule + camera-motion file sha256
(when the peer uses one). The folder holds the MOTChallenge result file (``results.txt``, reusable by anyone)
and ``meta.json`` (key fields, update seconds, frames, name, note and the sequence's raw TrackEval fields per
protocol + gt file hash, so a cached peer needs no re-scoring). JSON only: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path("runs") / "bench-mot-cache"


@dataclass(frozen=True)
class CacheKey:
    peer: str
    version: str
    sequence: str
    det_sha256: str
    score_rule: str
    gmc_sha256: str  # "" without camera motion

    def digest(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self, root: Path) -> Path:
        return root / self.peer / f"{self.sequence}-{self.digest()}"


class ResultCache:
    """``get(key) -> meta | None``, ``put(key, lines, meta)``, ``add_scores(key, tag, raw)``; ``root=None``: off."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        if self.root is None:
            return None
        d = key.folder(self.root)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != key.__dict__ or not (d / "results.txt").is_file():
            return None
        meta["results"] = str(d / "results.txt")
        return meta

    def put(self, key: CacheKey, lines: list[str], meta: dict[str, Any]) -> Path:
        """Store a run; returns the results file (a temporary-free place the scorer can read)."""
        assert self.root is not None
        d = key.folder(self.root)
        d.mkdir(parents=True, exist_ok=True)
        (d / "results.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        (d / "meta.json").write_text(json.dumps({**meta, "key": key.__dict__, "scores": {}}, indent=1) + "\n")
        return d / "results.txt"

    def add_scores(self, key: CacheKey, tag: str, raw: dict[str, Any]) -> None:
        """Keep one sequence's raw TrackEval fields under ``tag`` (protocol + gt file hash)."""
        if self.root is None:
            return
        p = key.folder(self.root) / "meta.json"
        try:
            meta = json.loads(p.read_text())
        except (OSError, ValueError):
            return
        meta.setdefault("scores", {})[tag] = raw
        p.write_text(json.dumps(meta) + "\n")
