"""Shared fixtures: where ``../shared`` is, and markers that skip cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ROITRACK_SHARED", REPO.parent / "shared"))


def _shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{p} is missing, but CI must always have ../shared")
        pytest.skip(f"{p} not found: ../shared (reference data) is absent in this clone")
    return p


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; skips with a reason when absent (fails in CI)."""
    return _shared_path()


@pytest.fixture(scope="session")
def yolov7_reference() -> Path:
    """``../shared/reference/yolov7``: official-format checkpoints and parity vectors."""
    return _shared_path("reference", "yolov7")


@pytest.fixture(scope="session")
def pets_sequence() -> Path:
    """``../shared/data/PETS09-S2L1-dev``: the real pedestrian sequence (MOTChallenge layout)."""
    return _shared_path("data", "PETS09-S2L1-dev")


@pytest.fixture(scope="session")
def mot_dev() -> Path:
    """``../shared/data/mot-dev``: MOT17-val halves, MOT15 and DanceTrack sequences (detections + gt, no images)."""
    return _shared_path("data", "mot-dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session", autouse=True)
def _private_export_cache(tmp_path_factory: pytest.TempPathFactory):
    """Exported models (tracker_core.inference) go to a cache of this test session, not ~/.cache: no test sees
    another run's files, and server processes the tests start inherit it."""
    old = os.environ.get("ROITRACK_CACHE_DIR")
    os.environ["ROITRACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("inference-cache"))
    yield
    if old is None:
        os.environ.pop("ROITRACK_CACHE_DIR", None)
    else:
        os.environ["ROITRACK_CACHE_DIR"] = old


_THREADS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that runs a CLI in-process (``roitrack train-detector`` sets its process's torch thread count, also
    from a module-scoped fixture) must not leave later tests another thread count: the chaotic random yolov7's
    fp32 rounding depends on it (unfused parity moved from 0.72 to 0.95 px at one thread). After every test the
    count goes back to what it was when torch was first seen; torch is only looked at once some test imported it."""
    import sys

    yield
    torch = sys.modules.get("torch")
    if torch is None:
        return
    n = _THREADS.setdefault("baseline", _baseline_threads(torch))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _baseline_threads(torch) -> int:
    """Torch's default: the CPUs this process may use (what it starts with before anything sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
