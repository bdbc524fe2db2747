"""The embedding choice of a stream: default resolution, the open message's fields, config validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.config import load_config
from server.convert import options_from_pb
from server.embedding import EmbeddingUnavailableError, available_embeddings, resolve_default
from server.registry import EmbeddingChangedError, SessionRegistry
from server.session import StreamOptions
from server.status_map import status_code
from tracker_core.errors import ConfigError, InvalidInputError, WeightsError


def test_default_resolution():
    assert available_embeddings(True, True) == ("off", "roi", "reid")
    assert resolve_default("auto", ("off", "roi", "reid")) == "roi"
    assert resolve_default("auto", ("off", "reid")) == "reid"
    assert resolve_default("auto", ("off",)) == "off"
    assert resolve_default("reid", ("off", "roi", "reid")) == "reid"
    with pytest.raises(ConfigError, match="--reid-model"):
        resolve_default("reid", ("off", "roi"))


def _opts(default: str = "roi", available=("off", "roi"), **fields) -> StreamOptions:
    return options_from_pb(
        pb.StreamOptions(**fields), 0.25, 0.45, embedding_default=default, embeddings=available
    )


def test_open_message_choices():
    assert _opts().embedding == "roi" and _opts().appearance
    assert _opts(appearance=True).embedding == "roi"  # legacy: on = the server's default
    off = _opts(appearance=False)
    assert (off.embedding, off.appearance) == ("off", False)
    assert _opts(embedding=pb.EMBEDDING_OFF).appearance is False
    assert _opts("reid", ("off", "reid")).embedding == "reid"
    with pytest.raises(EmbeddingUnavailableError, match="--reid-model") as exc:
        _opts(embedding=pb.EMBEDDING_REID)
    import grpc

    assert status_code(exc.value) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(InvalidInputError, match="contradict"):
        _opts(appearance=True, embedding=pb.EMBEDDING_OFF)
    with pytest.raises(InvalidInputError, match="unknown embedding"):
        _opts(embedding=7)
    assert StreamOptions(appearance=False).embedding == "off"
    with pytest.raises(InvalidInputError):
        StreamOptions(embedding="colour")


def test_resume_keeps_the_streams_embedding():
    reg = SessionRegistry(lambda: object())
    s, _ = reg.open("cam", False, StreamOptions(embedding="reid"))
    reg.detach(s)
    with pytest.raises(EmbeddingChangedError, match="tracks with the reid embedding"):
        reg.open("cam", True, StreamOptions(embedding="roi"))
    s2, resumed = reg.open("cam", True, StreamOptions(embedding="reid"))
    assert resumed and s2 is s
    reg.detach(s2)
    s3, resumed = reg.open("cam", False, StreamOptions(embedding="roi"))  # without resume: a fresh stream
    assert not resumed and s3.options.embedding == "roi"


def test_config_validates_reid_settings(tmp_path: Path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")  # only its existence is checked here; the runner opens it
    base = {"random_weights": True, "check_port": False}
    cfg = load_config(environ={}, flags={**base, "reid_model": str(model), "reid_size": "256x128"})
    assert cfg.reid_model == str(model) and cfg.default_embedding == "auto"
    with pytest.raises(WeightsError, match="does not exist"):
        load_config(environ={}, flags={**base, "reid_model": str(tmp_path / "none.onnx")})
    with pytest.raises(ConfigError, match="without reid_model"):
        load_config(environ={}, flags={**base, "reid_size": "256x128"})
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        load_config(environ={}, flags={**base, "reid_model": str(model), "reid_size": "256"})
    with pytest.raises(ConfigError, match="default_embedding reid needs"):
        load_config(environ={}, flags={**base, "default_embedding": "reid"})
    with pytest.raises(ConfigError, match="default_embedding roi needs"):
        load_config(environ={}, flags={**base, "default_embedding": "roi"})
    env = {
        "ROITRACK_REID_MODEL": str(model),
        "ROITRACK_DEFAULT_EMBEDDING": "reid",
        "ROITRACK_REID_MEAN": "0,0,0",
    }
    cfg = load_config(environ=env, flags=base)
    assert cfg.default_embedding == "reid" and cfg.reid_mean == "0,0,0"
