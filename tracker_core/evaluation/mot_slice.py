"""Cut a frame range out of a MOTChallenge sequence: the time split behind every honest figure.

``slice_sequence(src, first, last, out)`` writes a new sequence folder holding frames ``first..last`` of
``src`` renumbered from 1: ``seqinfo.ini`` (same frame rate and size, new length and name), ``img1/`` (symbolic
links to the source images by default, or copies), and ``gt/gt.txt`` / ``det/det.txt`` with only the rows of
those frames, renumbered. Every other command (``train``, ``val``, ``eval-mot``, ``stream``) then runs on the
slice unchanged, so "train on frames 1-250, report on 251-400" is two slices of one sequence. With ``step``
> 1 only every ``step``-th frame is kept (frame rate divided by ``step``): the same scene as a lower-frame-rate
camera sees it, with larger displacements between frames, a harder motion regime from the same ground truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tracker_core.errors import InvalidInputError
from tracker_core.evaluation.mot_io import read_seqinfo


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"251-400"`` -> ``(251, 400)`` (1-based, inclusive); ``InvalidInputError`` when malformed."""
    parts = text.split("-")
    try:
        if len(parts) != 2:
            raise ValueError
        first, last = int(parts[0]), int(parts[1])
    except ValueError:
        raise InvalidInputError(f"--frames must look like FIRST-LAST (e.g. 251-400), got {text!r}") from None
    if first < 1 or last < first:
        raise InvalidInputError(f"--frames {text}: need 1 <= FIRST <= LAST")
    return first, last


def _slice_rows(src: Path, dst: Path, first: int, last: int, step: int = 1) -> int:
    """Copy the CSV rows of frames ``first, first + step, ... <= last`` from ``src`` to ``dst``, renumbered from 1;
    returns the row count."""
    out = []
    for lineno, line in enumerate(src.read_text().splitlines(), 1):
        if not line.strip():
            continue
        head, sep, rest = line.partition(",")
        try:
            frame = int(float(head))
        except ValueError:
            raise InvalidInputError(f"{src}:{lineno}: frame number {head!r} is not a number") from None
        if first <= frame <= last and (frame - first) % step == 0:
            out.append(f"{(frame - first) // step + 1}{sep}{rest}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(out) + ("\n" if out else ""))
    return len(out)


def slice_sequence(
    src: str | Path, first: int, last: int, out: str | Path, *, copy_images: bool = False, step: int = 1
) -> Path:
    """Write frames ``first..last`` (1-based, inclusive) of sequence ``src`` as a new sequence at ``out``; with
    ``step`` > 1 only frames ``first, first + step, ...`` and a frame rate divided by ``step``.

    Images are symbolic links to the source files unless ``copy_images``. ``gt/gt.txt`` and ``det/det.txt``
    are sliced when present. ``out`` must not exist or be empty. Returns ``out``.
    """
    src_p, out_p = Path(src), Path(out)
    info = read_seqinfo(src_p)
    if last > info.seq_length:
        raise InvalidInputError(f"--frames {first}-{last}: {src_p} has only {info.seq_length} frames")
    if first < 1 or last < first:
        raise InvalidInputError(f"frame range {first}-{last}: need 1 <= first <= last")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InvalidInputError(f"--step must be a whole number >= 1, got {step!r}")
    if out_p.exists() and any(out_p.iterdir()):
        raise InvalidInputError(f"{out_p} exists and is not empty")
    if out_p.resolve() == src_p.resolve():
        raise InvalidInputError("the output folder must differ from the source sequence")
    img_src = src_p / info.im_dir
    img_out = out_p / "img1"
    img_out.mkdir(parents=True, exist_ok=True)
    kept = range(first, last + 1, step)
    for k, frame in enumerate(kept, 1):
        s = img_src / f"{frame:06d}{info.im_ext}"
        if not s.is_file():
            raise InvalidInputError(f"{s} is missing: {src_p} does not hold frame {frame}")
        d = img_out / f"{k:06d}{info.im_ext}"
        if copy_images:
            shutil.copyfile(s, d)
        else:
            d.symlink_to(s.resolve())
    for sub in ("gt/gt.txt", "det/det.txt"):
        if (src_p / sub).is_file():
            _slice_rows(src_p / sub, out_p / sub, first, last, step)
    name = f"{info.name}-f{first}-{last}" + (f"-s{step}" if step > 1 else "")
    (out_p / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={name}\nimDir=img1\nframeRate={info.frame_rate / step:g}\nseqLength={len(kept)}\n"
        f"imWidth={info.im_width}\nimHeight={info.im_height}\nimExt={info.im_ext}\n"
    )
    return out_p
