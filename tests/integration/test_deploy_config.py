"""deploy/config/roitrack.toml is read by the server's own loader (server/config.py): no unknown keys, valid values,
and ports that agree with the Dockerfile's EXPOSE and the Prometheus scrape target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import ServerConfig, load_config, read_toml
from tracker_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "config" / "roitrack.toml"


def test_example_config_is_known_to_the_server():
    settings = read_toml(EXAMPLE)  # unknown keys or wrong types raise ConfigError
    assert settings["metrics_port"] == 9108 and settings["port"] == 50051
    assert settings["host"] == "0.0.0.0"  # reachable from other containers (Prometheus, the load balancer)
    assert settings["weights"].startswith("/weights/")  # the mounted volume, never baked into the image
    assert "token" not in settings  # secrets come from the environment


def test_example_config_validates_with_mounted_weights(tmp_path):
    weights = tmp_path / "yolov7.safetensors"
    weights.write_bytes(b"placeholder: validation only checks the file exists")
    text = EXAMPLE.read_text().replace('"/weights/yolov7.safetensors"', f'"{weights}"')
    cfg_file = tmp_path / "roitrack.toml"
    cfg_file.write_text(text)
    cfg = load_config(cfg_file, environ={}, flags={"check_port": False})
    assert isinstance(cfg, ServerConfig)
    assert cfg.device == "cuda" and cfg.metrics_port == 9108


def test_example_with_a_typo_is_rejected(tmp_path):
    bad = tmp_path / "roitrack.toml"
    bad.write_text(EXAMPLE.read_text().replace("max_batch =", "max_bach ="))
    with pytest.raises(ConfigError, match="max_bach"):
        read_toml(bad)


def test_ports_agree_with_dockerfile():
    settings = read_toml(EXAMPLE)
    exposed = set(re.findall(r"^EXPOSE\s+(.+)$", (REPO / "Dockerfile").read_text(), re.M)[0].split())
    assert {str(settings["port"]), str(settings["metrics_port"])} == exposed
