"""Turn responses into things to keep: MOTChallenge result lines and annotated frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from client.drawing import TrackPainter, VideoWriter
from client.sources import SourceFrame
from roitrack_api.roitrack.v1 import tracking_pb2 as pb


def mot_lines(frame_index: int, resp: pb.TrackResponse) -> list[str]:
    """MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` for the confirmed tracks of a response."""
    out = []
    for t in resp.tracks:
        if t.state != pb.TRACK_STATE_CONFIRMED:
            continue
        b = t.box
        out.append(
            f"{frame_index},{t.track_id},{b.x1:.2f},{b.y1:.2f},{b.x2 - b.x1:.2f},{b.y2 - b.y1:.2f},{t.score:.4f},-1,-1,-1"
        )
    return out


class ResultSink:
    """Collects what ``--out`` (annotated video) and ``--mot-out`` (MOTChallenge results) ask for."""

    def __init__(self, video_path: str | None = None, mot_path: str | None = None, fps: float = 10.0) -> None:
        self.video = VideoWriter(video_path, fps) if video_path else None
        self.painter = TrackPainter()
        self.mot_path = Path(mot_path) if mot_path else None
        self.lines: list[str] = []

    def __call__(self, frame: SourceFrame, resp: pb.TrackResponse, latency_ms: float) -> None:
        if resp.HasField("error"):
            return
        if self.mot_path is not None:
            self.lines.extend(mot_lines(frame.index, resp))
        if self.video is not None:
            tracks = [
                (
                    t.track_id,
                    np.array([t.box.x1, t.box.y1, t.box.x2, t.box.y2]),
                    t.state == pb.TRACK_STATE_LOST,
                )
                for t in resp.tracks
            ]
            caption = f"frame {frame.index}  tracks {len(tracks)}  {latency_ms:.0f} ms"
            self.video.write(self.painter.draw(frame.bgr.copy(), tracks, caption))

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
        if self.mot_path is not None:
            self.mot_path.parent.mkdir(parents=True, exist_ok=True)
            self.mot_path.write_text("\n".join(self.lines) + ("\n" if self.lines else ""))
