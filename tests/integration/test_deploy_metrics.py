"""Every metric the Grafana dashboard and the Prometheus alert rules query is one the server really exports.

The exported names come from ``ServerMetrics().registry`` (never a hand-kept list): for each family the series names
its type exposes (histogram: ``_bucket``/``_sum``/``_count``/``_created``; counter: ``_total``/``_created``; info:
``_info``; gauge: the name itself). Each ``roitrack_*`` identifier in a PromQL expression must be one of those, so a
misspelled name, a bare histogram name or a counter without ``_total`` are all caught (tests below show it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from server.metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "roitrack.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# Labels Prometheus itself attaches to every scraped series, plus the histogram bucket label.
TARGET_LABELS = {"instance", "job", "le"}
SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "counter": ("_total", "_created"),
    "info": ("_info",),
    "gauge": ("",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![A-Za-z0-9_:$])roitrack_[A-Za-z0-9_:]*")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER_BLOCK = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


# --------------------------------------------------------------------------------------------- what is exported
def exported_series(registry: Any) -> dict[str, str]:
    """Series name -> family name, for every family in ``registry``, by family type."""
    out = {}
    for fam in registry.collect():
        for suffix in SUFFIXES[fam.type]:
            out[fam.name + suffix] = fam.name
    return out


def exported_labels(metrics: ServerMetrics) -> set[str]:
    """Label names of every labelled family (``_labelnames`` of each prometheus_client wrapper)."""
    labels = set(TARGET_LABELS)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels.update(value._labelnames)
    return labels


@pytest.fixture(scope="module")
def metrics() -> ServerMetrics:
    return ServerMetrics()


@pytest.fixture(scope="module")
def exported(metrics: ServerMetrics) -> dict[str, str]:
    names = exported_series(metrics.registry)
    assert "roitrack_frame_latency_seconds_bucket" in names  # the registry really is the server's
    return names


# ------------------------------------------------------------------------------------------ what deploy/ queries
def promql_metric_names(expr: str) -> set[str]:
    """``roitrack_*`` metric identifiers in a PromQL expression (string literals, e.g. label values, removed)."""
    return set(_IDENT.findall(_STRING.sub('""', expr)))


def promql_label_names(expr: str) -> set[str]:
    """Label names used in grouping clauses and label matchers."""
    bare = _STRING.sub('""', expr)
    out: set[str] = set()
    for group in _GROUPING.findall(bare):
        out.update(x.strip() for x in group.split(",") if x.strip())
    for block in _MATCHER_BLOCK.findall(bare):
        out.update(_MATCHER_LABEL.findall(block))
    return out


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _walk_panels(p.get("panels", []))


def dashboard_exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a Grafana dashboard."""
    out = []
    for panel in _walk_panels(dash.get("panels", [])):
        for t in panel.get("targets", []):
            if t.get("expr"):
                out.append((f"panel {panel.get('title')!r} target {t.get('refId')}", t["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q:
            out.append((f"variable {var.get('name')!r}", q))
    return out


def rule_exprs(rules: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"rule {r.get('alert') or r.get('record')!r}", r["expr"])
        for g in rules.get("groups", [])
        for r in g.get("rules", [])
    ]


def unknown_names(exprs: list[tuple[str, str]], exported: dict[str, str]) -> list[str]:
    """Human-readable problems: each metric name queried that no family exports."""
    problems = []
    for where, expr in exprs:
        for name in sorted(promql_metric_names(expr)):
            if name not in exported:
                problems.append(f"{where}: {name} is not exported by server/metrics.py")
    return problems


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _alerts() -> dict[str, Any]:
    return yaml.safe_load(ALERTS.read_text())


# ------------------------------------------------------------------------------------------------------- tests
def test_parser_finds_names_and_ignores_strings():
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(roitrack_stage_latency_seconds_bucket{job="roitrack_x",'
        ' instance=~"$instance"}[5m]))) / on(instance) roitrack_serving'
    )
    assert promql_metric_names(expr) == {"roitrack_stage_latency_seconds_bucket", "roitrack_serving"}
    assert promql_label_names(expr) == {"le", "stage", "job", "instance"}


def test_exported_series_follow_family_types(exported):
    # histograms expose buckets, never their bare name; counters expose _total; info exposes _info.
    assert {
        "roitrack_frame_latency_seconds_bucket",
        "roitrack_frame_latency_seconds_count",
    } <= exported.keys()
    assert "roitrack_frame_latency_seconds" not in exported
    assert "roitrack_frames_processed_total" in exported and "roitrack_frames_processed" not in exported
    assert "roitrack_model_info" in exported and "roitrack_model" not in exported
    assert "roitrack_active_streams" in exported and "roitrack_active_streams_bucket" not in exported


def test_dashboard_queries_only_exported_metrics(exported):
    exprs = dashboard_exprs(_dashboard())
    assert len(exprs) >= 20
    assert unknown_names(exprs, exported) == []


def test_alert_rules_query_only_exported_metrics(exported):
    exprs = rule_exprs(_alerts())
    assert len(exprs) >= 4
    assert unknown_names(exprs, exported) == []


def test_alert_unit_tests_use_real_series_names(exported):
    """The synthetic series in alerts_test.yml are named as the server names them, so the tests mean something."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    series = [(f"alerts_test series {s['series']}", s["series"]) for t in tests for s in t["input_series"]]
    assert unknown_names(series, exported) == []


def test_labels_used_exist(metrics):
    known = exported_labels(metrics)
    assert {"stage", "stream", "reason", "device"} <= known
    exprs = dashboard_exprs(_dashboard()) + rule_exprs(_alerts())
    bad = [(w, sorted(promql_label_names(e) - known)) for w, e in exprs if promql_label_names(e) - known]
    assert bad == []


MISSPELLINGS = [
    ("roitrack_frame_latency_seconds_bucket", "roitrack_frame_latncy_seconds_bucket"),  # typo
    ("roitrack_frames_dropped_total", "roitrack_frames_dropped"),  # counter without _total
    ("roitrack_serving", "roitrack_serving_count"),  # gauge with a histogram suffix
    ("roitrack_gpu_memory_used_bytes", "roitrack_gpu_memory_used"),  # unit dropped
]


@pytest.mark.parametrize(("good", "bad"), MISSPELLINGS)
def test_misspelled_metric_in_dashboard_is_caught(exported, good, bad):
    text = DASHBOARD.read_text()
    assert good in text, f"the dashboard no longer queries {good}; pick another example"
    broken = json.loads(text.replace(good, bad, 1))
    problems = unknown_names(dashboard_exprs(broken), exported)
    assert len(problems) == 1 and bad in problems[0]


@pytest.mark.parametrize(("good", "bad"), MISSPELLINGS)
def test_misspelled_metric_in_alert_rules_is_caught(exported, good, bad):
    rules = _alerts()
    hits = [r for g in rules["groups"] for r in g["rules"] if re.search(rf"\b{good}\b", r["expr"])]
    assert hits, f"no alert rule queries {good}; pick another example"
    hits[0]["expr"] = re.sub(rf"\b{good}\b", bad, hits[0]["expr"])
    problems = unknown_names(rule_exprs(rules), exported)
    assert problems and all(bad in p for p in problems)


def test_dashboard_shows_what_the_issue_asks_for():
    exprs = [e for _, e in dashboard_exprs(_dashboard())]
    joined = "\n".join(exprs)

    def quantiles_of(metric: str) -> set[str]:
        return {
            m.group(1)
            for e in exprs
            if metric in e
            for m in [re.match(r"\s*histogram_quantile\(\s*([0-9.]+)", e)]
            if m is not None
        }

    assert quantiles_of("roitrack_frame_latency_seconds_bucket") >= {"0.5", "0.95", "0.99"}
    assert quantiles_of("roitrack_stage_latency_seconds_bucket") >= {"0.5", "0.95", "0.99"}
    assert any("by (stage, le)" in e for e in exprs if "roitrack_stage_latency_seconds_bucket" in e)
    assert any("by (stream)" in e and "roitrack_frames_processed_total" in e for e in exprs)  # fps per stream
    for name in (
        "roitrack_frames_dropped_total",
        "roitrack_batch_size_frames_bucket",
        "roitrack_active_streams",
        "roitrack_active_tracks",
        "roitrack_gpu_memory_used_bytes",
        "roitrack_gpu_memory_total_bytes",
    ):
        assert name in joined, name


def test_dashboard_uses_the_provisioned_datasource():
    ds = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {d["uid"] for d in ds if d["type"] == "prometheus"}
    assert uids == {"prometheus"}
    dash = _dashboard()
    used = {
        p["datasource"]["uid"] for p in _walk_panels(dash["panels"]) if isinstance(p.get("datasource"), dict)
    }
    used |= {t["datasource"]["uid"] for p in _walk_panels(dash["panels"]) for t in p.get("targets", [])}
    assert used == uids
    assert dash["uid"] == "roitrack"
    ids = [p["id"] for p in _walk_panels(dash["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def _as_recording_rules(exprs: list[tuple[str, str]]) -> dict[str, Any]:
    """Grafana queries as recording rules so promtool parses their PromQL (Grafana variables substituted)."""
    subst = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}
    rules = []
    for i, (_, expr) in enumerate(exprs):
        if expr.lstrip().startswith("label_values("):  # a Grafana function, not PromQL
            continue
        for k, v in subst.items():
            expr = expr.replace(k, v)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def test_dashboard_promql_parses_with_promtool(tmp_path):
    promtool = _promtool()
    rules = _as_recording_rules(dashboard_exprs(_dashboard()))
    assert len(rules["groups"][0]["rules"]) >= 20
    good = tmp_path / "dashboard_rules.yml"
    good.write_text(yaml.safe_dump(rules))
    ok = subprocess.run([promtool, "check", "rules", str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # and the same check fails on a broken query
    rules["groups"][0]["rules"][0]["expr"] = "sum by (stream (rate(roitrack_frames_processed_total[1m]))"
    bad = tmp_path / "dashboard_rules_bad.yml"
    bad.write_text(yaml.safe_dump(rules))
    fail = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert fail.returncode != 0


def populated_exposition(metrics: ServerMetrics) -> str:
    """The real ``/metrics`` text of a server whose every family has one series (labelled ones get a child)."""
    from prometheus_client import Counter, Gauge, Histogram, Info, generate_latest

    for fam in vars(metrics).values():
        if not isinstance(fam, MetricWrapperBase):
            continue
        child = fam.labels(*["x"] * len(fam._labelnames)) if fam._labelnames else fam
        if isinstance(fam, Histogram):
            child.observe(0.01)  # type: ignore[attr-defined]
        elif isinstance(fam, Counter):
            child.inc()  # type: ignore[attr-defined]
        elif isinstance(fam, Gauge):
            child.set(1)  # type: ignore[attr-defined]
        elif isinstance(fam, Info):
            child.info({"arch": "yolov7"})  # type: ignore[attr-defined]
    return generate_latest(metrics.registry).decode()


def test_queried_names_appear_in_the_real_exposition():
    """Beyond the type rules: every queried series is present in the text Prometheus would scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    text = populated_exposition(ServerMetrics())
    samples = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    exprs = dashboard_exprs(_dashboard()) + rule_exprs(_alerts())
    queried = {n for _, e in exprs for n in promql_metric_names(e)}
    assert queried and queried <= samples, sorted(queried - samples)


def test_exposition_passes_promtool_lint(tmp_path):
    promtool = _promtool()
    text = populated_exposition(ServerMetrics())
    res = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr
    # the lint is real: a gauge named like a counter is reported
    bad = text + "# HELP roitrack_bad_total x\n# TYPE roitrack_bad_total gauge\nroitrack_bad_total 1\n"
    res = subprocess.run(
        [promtool, "check", "metrics"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0


def test_dashboard_panels_do_not_overlap():
    boxes = [(p["title"], p["gridPos"]) for p in _walk_panels(_dashboard()["panels"]) if "gridPos" in p]
    for i, (ta, a) in enumerate(boxes):
        assert a["x"] >= 0 and a["x"] + a["w"] <= 24, ta
        for tb, b in boxes[i + 1 :]:
            overlap_x = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            overlap_y = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            assert not (overlap_x and overlap_y), f"{ta!r} overlaps {tb!r}"
