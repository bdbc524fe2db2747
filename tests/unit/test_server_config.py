"""Server configuration: defaults < TOML < environment < flags, validated with clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from server.config import ServerConfig, load_config, validate
from tracker_core.errors import ConfigError, WeightsError


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "roitrack.toml"
    toml.write_text(
        '[server]\nport = 6000\nmax_batch = 4\nmax_wait_ms = 7.5\nrandom_weights = true\ntoken = "from-toml-123"\n'
    )
    env = {"ROITRACK_PORT": "6001", "ROITRACK_BATCHING": "off", "ROITRACK_UNRELATED": "x", "PATH": "/bin"}
    cfg = load_config(toml, environ=env, flags={"port": 6002, "max_batch": None, "check_port": False})
    assert cfg.port == 6002  # flag wins over env over toml
    assert cfg.max_batch == 4 and cfg.max_wait_ms == 7.5  # toml (flag None = not given)
    assert cfg.batching is False  # env
    assert cfg.token == "from-toml-123" and cfg.random_weights
    with pytest.raises(AttributeError):
        cfg.port = 1  # type: ignore[misc]


def test_hardening_limits_from_toml_env_and_flags(tmp_path: Path) -> None:
    from roitrack_cli.commands import serve

    toml = tmp_path / "c.toml"
    toml.write_text("random_weights = true\nmax_detections = 300\n")
    env = {"ROITRACK_OPEN_TIMEOUT_S": "2.5", "ROITRACK_RANDOM_ENCODER": "false"}
    cfg = load_config(
        toml, environ=env, flags={"drain_timeout_s": 4.0, "random_encoder": True, "check_port": False}
    )
    assert (cfg.max_detections, cfg.open_timeout_s, cfg.drain_timeout_s) == (300, 2.5, 4.0)
    assert cfg.random_encoder  # the flag wins over the environment
    for name in ("random_encoder", "max_detections", "open_timeout_s", "drain_timeout_s"):
        assert name in serve.FLAG_FIELDS  # `roitrack serve --<name>` reaches the config


def test_config_path_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("random_weights = true\nmetrics_port = 0\nport = 0\n")
    cfg = load_config(environ={"ROITRACK_CONFIG": str(toml)})
    assert cfg.random_weights and cfg.port == 0


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("prot = 1\n", "unknown setting 'prot'"),
        ("port = 'abc'\n", "port: cannot read 'abc' as int"),
        ("port = 70000\nrandom_weights = true\n", "port must be 0..65535"),
        ("max_batch = 0\nrandom_weights = true\n", "max_batch must be 1..256"),
        ("input_size = 100\nrandom_weights = true\n", "multiple of 32"),
        ("device = 'tpu'\nrandom_weights = true\n", "device must be"),
        ("random_weights = true\ntls_cert = 'a.crt'\n", "tls_cert and tls_key must be given together"),
        ("random_weights = true\ntoken = 'short'\n", "token must be at least 8"),
        ("", "no detector weights"),
        ("max_detections = 0\nrandom_weights = true\n", "max_detections must be 1..100000"),
        ("open_timeout_s = 0\nrandom_weights = true\n", "open_timeout_s must be in"),
        ("drain_timeout_s = -1\nrandom_weights = true\n", "drain_timeout_s must be 0..3600"),
        ("port = [", "not valid TOML"),
    ],
)
def test_bad_settings(tmp_path: Path, toml: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(toml + "check_port = false\n" if "[" not in toml else toml)
    with pytest.raises(ConfigError, match=needle):
        load_config(p, environ={})


def test_missing_files_are_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"weights file .*nope.safetensors does not exist"):
        load_config(environ={}, flags={"weights": str(tmp_path / "nope.safetensors"), "check_port": False})
    with pytest.raises(WeightsError, match="encoder file"):
        load_config(
            environ={},
            flags={"random_weights": True, "encoder": str(tmp_path / "e.safetensors"), "check_port": False},
        )
    with pytest.raises(ConfigError, match=r"config file .* does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


def test_port_in_use_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            validate(ServerConfig(host="127.0.0.1", port=port, metrics_port=0, random_weights=True))
        with pytest.raises(ConfigError, match="metrics port"):
            validate(ServerConfig(host="127.0.0.1", port=0, metrics_port=port, random_weights=True))


def test_encoder_for_another_detector_is_refused(tmp_path: Path) -> None:
    """Loading checks the encoder's metadata against the detector it would read (a clear WeightsError)."""
    from server.loading import build_runner
    from tracker_core.detector import build_detector
    from tracker_core.encoder import EncoderMeta, build_encoder, save_encoder

    other = build_detector("yolov7-tiny", seed=1)  # same arch, different weights
    meta = EncoderMeta(
        detector_arch=other.arch,
        detector_sha256=other.weights_sha256,
        features="spp",
        tap_channels={"32": int(other.tap_channels)},
        width=16,
        hidden=32,
    )
    path = tmp_path / "enc.safetensors"
    save_encoder(path, build_encoder(meta), meta)
    cfg = load_config(
        environ={},
        flags={
            "random_weights": True,
            "encoder": str(path),
            "input_size": 64,
            "check_port": False,
            "device": "cpu",
        },
    )
    with pytest.raises(WeightsError, match="encoder was trained on another detector: weights sha256"):
        build_runner(cfg)


def test_named_tokens_from_toml_table_env_and_the_single_token(tmp_path: Path) -> None:
    from server.config import named_tokens

    toml = tmp_path / "c.toml"
    toml.write_text(
        '[server]\nrandom_weights = true\n[server.tokens]\nalice = "alice-secret-1"\nbob = "bob-secret-22"\n'
    )
    cfg = load_config(toml, environ={"ROITRACK_TOKEN": "legacy-token-1", "ROITRACK_CHECK_PORT": "0"})
    assert named_tokens(cfg) == {
        "default": "legacy-token-1",
        "alice": "alice-secret-1",
        "bob": "bob-secret-22",
    }
    env = {"ROITRACK_TOKENS": "cam-a=aaaaaaaa1, cam-b=bbbbbbbb2", "ROITRACK_CHECK_PORT": "0"}
    cfg = load_config(None, environ=env, flags={"random_weights": True})
    assert named_tokens(cfg) == {"cam-a": "aaaaaaaa1", "cam-b": "bbbbbbbb2"}
    assert (
        named_tokens(load_config(None, environ={}, flags={"random_weights": True, "check_port": False})) == {}
    )


@pytest.mark.parametrize(
    ("tokens", "needle"),
    [
        ("alice", "name=token"),
        ("alice=short", "at least 8"),
        ("al/ice=long-enough-1", "must be 1..64"),
        ("a=long-enough-1,a=long-enough-2", "given twice"),
        ("a=long-enough-1,b=long-enough-1", "same token"),
    ],
)
def test_bad_tokens(tokens: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(None, environ={}, flags={"random_weights": True, "check_port": False, "tokens": tokens})
    with pytest.raises(ConfigError, match="metrics_stream_labels"):
        load_config(None, environ={}, flags={"random_weights": True, "metrics_stream_labels": -1})
