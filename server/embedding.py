"""Which appearance embedding a stream tracks with: ``roi`` (the ROI encoder on the detector's features),
``reid`` (the ONNX ReID model on image crops) or ``off`` (motion only).

A stream chooses in its ``open`` message; unset, it gets the server's default (``default_embedding``: ``auto`` =
``roi`` when an encoder is loaded, else ``reid`` when a ReID model is, else ``off``). A choice the server cannot
serve is refused with :class:`EmbeddingUnavailableError` (``FAILED_PRECONDITION``), naming the flag it lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracker_core.errors import ConfigError

EMBEDDINGS = ("off", "roi", "reid")
DEFAULT_CHOICES = ("auto", *EMBEDDINGS)
_FLAG = {"roi": "--encoder (a ROI encoder .safetensors)", "reid": "--reid-model (an ONNX ReID model)"}


class EmbeddingUnavailableError(ConfigError):
    """A stream asked for an embedding this server has no model for (FAILED_PRECONDITION)."""


def available_embeddings(roi: bool, reid: bool) -> tuple[str, ...]:
    """What streams may choose: always ``off``, plus the loaded models."""
    return ("off", *(("roi",) if roi else ()), *(("reid",) if reid else ()))


def resolve_default(default: str, available: Sequence[str]) -> str:
    """The embedding of streams that do not choose. ``ConfigError`` when ``default`` names a missing model."""
    if default not in DEFAULT_CHOICES:
        raise ConfigError(f"default_embedding must be one of {', '.join(DEFAULT_CHOICES)}, got {default!r}")
    if default == "auto":
        return "roi" if "roi" in available else "reid" if "reid" in available else "off"
    if default not in available:
        raise ConfigError(f"default_embedding {default} needs {_FLAG[default]}")
    return default


def check_available(choice: str, available: Sequence[str]) -> str:
    """``choice`` itself when this server can serve it, else :class:`EmbeddingUnavailableError`."""
    if choice not in EMBEDDINGS:
        raise ConfigError(f"unknown embedding {choice!r} (off, roi or reid)")
    if choice not in available:
        raise EmbeddingUnavailableError(
            f"the stream asks for the {choice} embedding, but this server was started without {_FLAG[choice]} "
            f"(it serves: {', '.join(available)})"
        )
    return choice
