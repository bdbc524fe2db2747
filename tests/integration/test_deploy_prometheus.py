"""Prometheus config and alert rules pass ``promtool`` (Debian's ``prometheus`` package), and the alert rules'
unit tests (``deploy/prometheus/alerts_test.yml``) pass; broken copies fail, so the checks are honest.

promtool missing: skipped with a reason on a developer machine, a failure in CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def _copy_prom(tmp_path: Path) -> Path:
    dst = tmp_path / "prometheus"
    shutil.copytree(PROM, dst)
    return dst


def test_config_passes_promtool(promtool):
    res = _run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 rule files found" in res.stdout + res.stderr  # alerts.yml is really loaded


def test_rules_pass_promtool(promtool):
    res = _run(promtool, "check", "rules", str(PROM / "alerts.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_unit_tests_pass(promtool):
    res = _run(promtool, "test", "rules", "alerts_test.yml", cwd=PROM)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_every_alert_has_a_firing_unit_test():
    alerts = {
        r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]
    }
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert alerts == firing


def test_required_alerts_exist():
    rules = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert any('up{job="roitrack"} == 0' in e for e in exprs.values())  # server down
    assert any(
        "histogram_quantile(0.95" in e and "roitrack_frame_latency_seconds_bucket" in e
        for e in exprs.values()
    )
    assert any("roitrack_frames_dropped_total" in e for e in exprs.values())
    assert any("roitrack_gpu_memory_used_bytes" in e and "> 0.9" in e for e in exprs.values())
    for r in rules:
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_prometheus_scrapes_the_server_metrics_port():
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "roitrack")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["roitrack:9108"]  # compose service name : metrics_port of deploy/config/roitrack.toml
    assert cfg["rule_files"] == ["alerts.yml"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('up{job="roitrack"} == 0', 'up{job="roitrack" == 0'),  # PromQL syntax error
        ("for: 5m", "for: 5 minutes"),  # bad duration
        (
            "rate(roitrack_frames_dropped_total[5m])",
            "rate(roitrack_frames_dropped_total)",
        ),  # rate of an instant vector
        ("{{ $labels.instance }}", "{{ $labels.instance }"),  # broken template
    ],
)
def test_bad_rule_fails_promtool(promtool, tmp_path, old, new):
    text = (PROM / "alerts.yml").read_text()
    assert old in text
    bad = tmp_path / "alerts.yml"
    bad.write_text(text.replace(old, new, 1))
    res = _run(promtool, "check", "rules", str(bad))
    assert res.returncode != 0, f"promtool accepted a broken rule ({new!r})"


def test_bad_config_fails_promtool(promtool, tmp_path):
    d = _copy_prom(tmp_path)
    (d / "alerts.yml").unlink()  # rule file missing
    assert _run(promtool, "check", "config", str(d / "prometheus.yml")).returncode != 0
    d2 = _copy_prom(tmp_path / "b")
    cfg = (d2 / "prometheus.yml").read_text().replace("scrape_interval: 5s", "scrape_intervall: 5s")
    (d2 / "prometheus.yml").write_text(cfg)  # unknown field
    assert _run(promtool, "check", "config", str(d2 / "prometheus.yml")).returncode != 0


def test_wrong_alert_threshold_fails_unit_tests(promtool, tmp_path):
    """The alert unit tests pin behaviour: loosening the GPU memory threshold to 99 % makes them fail."""
    d = _copy_prom(tmp_path)
    text = (d / "alerts.yml").read_text()
    assert "> 0.9\n" in text
    (d / "alerts.yml").write_text(text.replace("> 0.9\n", "> 0.99\n"))
    res = _run(promtool, "test", "rules", "alerts_test.yml", cwd=d)
    assert res.returncode != 0
    assert "RoitrackGpuMemoryHigh" in res.stdout + res.stderr
