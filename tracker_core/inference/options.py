"""What an inference backend is asked for: backend, precision, threads, export cache (validated, frozen)."""

from __future__ import annotations

from dataclasses import dataclass

from tracker_core.errors import ConfigError

BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
"""``auto`` measures the installed backends at start-up and keeps the fastest that passes the parity check."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""``auto``: each backend's fastest precision on this machine (bf16 where the CPU has it, fp16 on CUDA)."""

EXTRAS = {"openvino": "roitrack[openvino]", "onnxruntime": "roitrack[onnxruntime]"}
"""The pip extra that installs each optional backend (named in error messages)."""


@dataclass(frozen=True)
class InferenceOptions:
    """``backend`` and ``precision`` (see :data:`BACKENDS`, :data:`PRECISIONS`); ``threads``: intra-op threads of
    the backend (0 = the CPUs this process may run on); ``cache_dir``: where exported models are kept (None =
    ``$ROITRACK_CACHE_DIR`` or ``~/.cache/roitrack/inference``); ``verify``: compare a non-reference backend with
    torch fp32 on the calibration frame when it is built (``auto`` always does)."""

    backend: str = "auto"
    precision: str = "auto"
    threads: int = 0
    cache_dir: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if (
            not isinstance(self.threads, int)
            or isinstance(self.threads, bool)
            or not 0 <= self.threads <= 1024
        ):
            raise ConfigError(f"inference threads must be 0 (all CPUs) .. 1024, got {self.threads!r}")


REFERENCE = ("torch", "fp32")
"""The reference every other backend and precision is checked against."""
