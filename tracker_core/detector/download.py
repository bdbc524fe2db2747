"""Download an official YOLOv7 release file (with a progress bar) and convert it to our format.

Only ``http``/``https`` URLs; the file is streamed into a temporary file beside the target and renamed
when complete (its size checked against ``Content-Length``), so an interrupted download leaves nothing.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tracker_core.detector.architectures import get_arch
from tracker_core.detector.convert import convert_weights
from tracker_core.detector.weights_io import WeightsMeta
from tracker_core.errors import InvalidInputError, WeightsError

OFFICIAL_URL_BASE = "https://github.com/WongKinYiu/yolov7/releases/download/v0.1"
CHUNK = 1 << 16


@dataclass(frozen=True)
class Downloaded:
    checkpoint: Path
    weights: Path
    meta: WeightsMeta


def release_url(arch: str, url_base: str = OFFICIAL_URL_BASE) -> str:
    spec = get_arch(arch)
    parsed = urllib.parse.urlparse(url_base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInputError(f"--url-base must be an http(s) URL, got {url_base!r}")
    return f"{url_base.rstrip('/')}/{spec.release_file}"


def download_file(url: str, dst: str | Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dst`` atomically with a tqdm progress bar on stderr."""
    from tqdm import tqdm

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as exc:
                raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise WeightsError(f"download of {url} failed: {exc}") from exc
            with resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dst.name,
                    disable=not progress,
                ) as bar:
                    while True:
                        try:
                            block = resp.read(CHUNK)
                        except (OSError, ValueError) as exc:
                            raise WeightsError(
                                f"download of {url} broke off after {done} bytes: {exc}"
                            ) from exc
                        if not block:
                            break
                        out.write(block)
                        done += len(block)
                        bar.update(len(block))
        if total is not None and done != total:
            raise WeightsError(f"download of {url} is incomplete: got {done} of {total} bytes")
        if done == 0:
            raise WeightsError(f"download of {url} is empty")
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def download_weights(
    arch: str,
    folder: str | Path = "weights",
    url_base: str = OFFICIAL_URL_BASE,
    progress: bool = True,
    force: bool = False,
) -> Downloaded:
    """Download the official ``<arch>.pt`` into ``folder`` (unless present) and convert it to
    ``<folder>/<arch>.safetensors``. Raises :class:`WeightsError` if the file is not that arch."""
    spec = get_arch(arch)
    url = release_url(arch, url_base)
    folder = Path(folder)
    ckpt = folder / spec.release_file
    if force or not ckpt.exists():
        download_file(url, ckpt, progress=progress)
    weights = folder / f"{spec.name}.safetensors"
    tmp_out = folder / f".{spec.name}.converting.safetensors"
    try:
        meta = convert_weights(ckpt, tmp_out)
        if meta.arch != spec.name:
            raise WeightsError(f"{ckpt} holds {meta.arch} weights, not {spec.name}")
        os.replace(tmp_out, weights)
    finally:
        tmp_out.unlink(missing_ok=True)
    return Downloaded(checkpoint=ckpt, weights=weights, meta=meta)
