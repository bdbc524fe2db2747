"""A stream's camera-motion compensation: the estimator plus the on / off / auto policy.

``on``: estimate every frame and apply every estimate. ``off``: nothing (a static camera; no cost). ``auto``: estimate
every frame, but apply the estimates only while the camera is seen moving: a frame whose estimated motion moves the
frame's corners by more than ``moving_px`` starts (or continues) a moving spell; after ``static_s`` seconds of
frames below it the camera is treated as static again: its (sub-threshold, mostly noise) estimates are not applied
and, to save the cost, it is only probed every ``probe_s`` seconds (the probe compares with the previous probe's
frame, so motion that built up in between is seen). A static camera in ``auto`` therefore tracks exactly as in
``off``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError
from tracker_core.motion.estimator import (
    DEFAULT_FLOW_CONFIG,
    FlowConfig,
    FlowEstimator,
    GrayFrame,
    corner_motion,
    downscale_gray,
)


class MotionMode(StrEnum):
    OFF = "off"
    ON = "on"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: str | MotionMode) -> MotionMode:
        try:
            return cls(str(value.value if isinstance(value, MotionMode) else value).strip().lower())
        except ValueError:
            raise InvalidInputError(f"camera motion must be on, off or auto, got {value!r}") from None


@dataclass(frozen=True)
class MotionPolicy:
    """``auto``'s thresholds: ``moving_px`` corner displacement per frame (original pixels) that counts as a moving
    camera (1 px: the motion files of MOT17's static 1080p cameras hold up to 0.8 px of estimation noise, and
    applying it cost MOT17-02 0.5 HOTA and 11 ID switches); ``static_s`` seconds below it before the camera counts as static; ``probe_s`` between estimates while
    static."""

    moving_px: float = 1.0
    static_s: float = 2.0
    probe_s: float = 0.5
    flow: FlowConfig = field(default_factory=lambda: DEFAULT_FLOW_CONFIG)

    def __post_init__(self) -> None:
        if not (self.moving_px > 0 and self.static_s >= 0 and self.probe_s >= 0):
            raise InvalidInputError("camera motion policy: moving_px > 0, static_s >= 0, probe_s >= 0")


DEFAULT_POLICY = MotionPolicy()


class CameraMotion:
    """Per-stream camera motion: ``update(image | GrayFrame, boxes, timestamp) -> warp [2,3] | None``.

    ``warp`` maps the previous frame's pixels to this frame's (original pixels), ready for
    ``Tracker.update(warp=...)``. ``moving`` says whether ``auto`` currently treats the camera as moving;
    ``estimates`` counts the frames that ran the estimator.
    """

    def __init__(
        self, mode: MotionMode | str = MotionMode.AUTO, policy: MotionPolicy = DEFAULT_POLICY
    ) -> None:
        self.mode = MotionMode.parse(mode)
        self.policy = policy
        self.estimator = FlowEstimator(policy.flow)
        self.moving = self.mode == MotionMode.ON
        self.estimates = 0
        self.last_motion_px = 0.0
        self._still_since: float | None = None  # first frame of the current spell below moving_px
        self._last_probe: float | None = None
        self._contiguous = False  # whether the previous frame went through the estimator

    @property
    def enabled(self) -> bool:
        return self.mode != MotionMode.OFF

    def gray(self, image: NDArray[np.uint8]) -> GrayFrame:
        """The grey frame the estimator reads (``downscale_gray`` at the policy's width)."""
        return downscale_gray(image, self.policy.flow.width)

    def wants_frame(self, timestamp: float) -> bool:
        """Whether the frame at ``timestamp`` will be estimated (callers may skip preparing its grey image)."""
        if self.mode == MotionMode.OFF:
            return False
        if self.mode == MotionMode.ON or self.moving or self._still_since is None:
            return True
        if timestamp - self._still_since < self.policy.static_s:
            return True
        return self._last_probe is None or timestamp - self._last_probe >= self.policy.probe_s

    def update(
        self,
        frame: GrayFrame | NDArray[np.uint8] | None,
        boxes: NDArray[np.floating] | None,
        timestamp: float,
    ) -> NDArray[np.float64] | None:
        """This frame's warp to apply, or ``None``. ``frame`` may be ``None`` for a frame ``wants_frame`` declined."""
        if self.mode == MotionMode.OFF:
            return None
        want = self.wants_frame(timestamp)
        if frame is None or not want:
            if want:  # a frame that should have been estimated is missing: start afresh with the next one
                self.estimator.reset()
            self._contiguous = False  # the next estimate spans more than one frame
            return None
        g = frame if isinstance(frame, GrayFrame) else self.gray(frame)
        warp = self.estimator.estimate(g, boxes)
        spans_one = self._contiguous
        self._contiguous = True
        self.estimates += 1
        return self._decide(warp, corner_motion(warp, g.orig_w, g.orig_h), timestamp, spans_one)

    def apply_known(
        self, warp: NDArray[np.float64] | None, width: float, height: float, timestamp: float
    ) -> NDArray[np.float64] | None:
        """The same policy for a motion known beforehand (a ``gmc.txt`` line; ``None``: none known): ``on`` applies
        it, ``auto`` only while the camera is seen moving (a static camera's file holds sub-pixel noise)."""
        if self.mode == MotionMode.OFF or warp is None:
            return None
        return self._decide(warp, corner_motion(warp, width, height), timestamp, True)

    def _decide(
        self, warp: NDArray[np.float64] | None, motion: float, timestamp: float, spans_one: bool
    ) -> NDArray[np.float64] | None:
        self.last_motion_px = motion
        if self.mode == MotionMode.ON:
            return warp
        if motion > self.policy.moving_px:
            self.moving = True
            self._still_since = None
            # a probe spanning several frames measured their sum, which the tracks never saw frame by frame
            return warp if spans_one else None
        if self._still_since is None:
            self._still_since = timestamp
        if self.moving and timestamp - self._still_since >= self.policy.static_s:
            self.moving = False
        if not self.moving:
            self._last_probe = timestamp
            return None
        return warp if spans_one else None


def gate_known_motion(
    warps: list[NDArray[np.float64] | None],
    width: float,
    height: float,
    frame_rate: float,
    mode: MotionMode | str = MotionMode.AUTO,
    policy: MotionPolicy = DEFAULT_POLICY,
) -> list[NDArray[np.float64] | None]:
    """A sequence's known per-frame warps (``read_camera_motion``) through ``mode``'s policy, frame ``i`` at
    ``(i + 1) / frame_rate`` seconds as ``track_sequence`` times it."""
    cm = CameraMotion(mode, policy)
    return [cm.apply_known(w, width, height, (i + 1) / frame_rate) for i, w in enumerate(warps)]
