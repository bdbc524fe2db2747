"""The Kubernetes base (deploy/k8s): rendered with kustomize (kubectl's built-in; Debian's kubernetes-client when
missing, installed by .ci/run), validated offline against the Kubernetes schemas (kubernetes-validate), and the
objects that matter asserted: GPU request, gRPC probes on the health service, drain timing, PDB, HPA through
prometheus-adapter on exported metrics, Prometheus scraping, Redis wiring, secrets, and Envoy's stream affinity."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.connection import STREAM_ID_HEADER
from server.app import SERVICE_NAME
from server.config import ServerConfig, load_config
from server.metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "k8s"
K8S_VERSION = "1.30.0"  # gRPC probes are GA since 1.27; validate against a release clusters run today


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing, but .ci/run installs it (Debian kubernetes-client)")
        pytest.skip("kubectl (kustomize renderer) is not installed: apt-get install kubernetes-client")
    return path


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    out = subprocess.run([_kubectl(), "kustomize", str(BASE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(docs) >= 15
    return docs


def get(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def container(objs: list[dict[str, Any]], deployment: str, name: str) -> dict[str, Any]:
    spec = get(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_every_object_validates_against_the_kubernetes_schemas(objects: list[dict[str, Any]]) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    crds = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except SchemaNotFoundError:
            crds.append(obj["kind"])
    assert crds == ["ServiceMonitor"]  # the only CRD (Prometheus Operator); checked by hand below
    assert all(o["metadata"].get("namespace") == "roitrack" for o in objects if o["kind"] != "Namespace")
    # the validator is not a no-op: an unknown field and a wrong type are refused
    bad = copy.deepcopy(get(objects, "Deployment", "roitrack"))
    bad["spec"]["template"]["spec"]["containers"][0]["gpu"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    bad = copy.deepcopy(get(objects, "PodDisruptionBudget", "roitrack"))
    bad["spec"]["selector"] = "app=roitrack"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_servers_request_a_gpu_and_probe_the_grpc_health_service(objects: list[dict[str, Any]]) -> None:
    c = container(objects, "roitrack", "roitrack")
    assert (
        c["resources"]["requests"]["nvidia.com/gpu"] == 1 and c["resources"]["limits"]["nvidia.com/gpu"] == 1
    )
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9108}
    for probe in ("startupProbe", "readinessProbe"):
        assert c[probe]["grpc"] == {"port": ports["grpc"], "service": SERVICE_NAME}
    assert c["livenessProbe"]["grpc"] == {"port": ports["grpc"]}  # overall health ("" service)


def test_drain_timing_matches_the_grace_period(objects: list[dict[str, Any]]) -> None:
    dep = get(objects, "Deployment", "roitrack")
    spec = dep["spec"]["template"]["spec"]
    c = container(objects, "roitrack", "roitrack")
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep"
    drain = float(env_of(c)["ROITRACK_DRAIN_TIMEOUT_S"])
    toml = get(objects, "ConfigMap", "roitrack-config")["data"]["roitrack.toml"]
    assert re.search(r"drain_timeout_s\s*=\s*([\d.]+)", toml)[1] == str(drain)  # type: ignore[index]
    # preStop, then the drain, then room for the last snapshots and exit
    assert spec["terminationGracePeriodSeconds"] >= float(pre[1]) + drain + 10
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_server_config_env_and_toml_load_with_the_servers_own_loader(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    c = container(objects, "roitrack", "roitrack")
    env = env_of(c)
    assert env["ROITRACK_STATE_STORE"] == "redis://roitrack-redis:6379/0"
    redis_svc = get(objects, "Service", "roitrack-redis")
    assert redis_svc["spec"]["ports"][0]["port"] == 6379
    assert env["ROITRACK_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["ROITRACK_TOKEN"] == {"secretKeyRef": {"name": "roitrack-token", "key": "token"}}
    assert get(objects, "Secret", "roitrack-token")["stringData"]["token"]
    # only the servers reach Redis (it has no password)
    pol = get(objects, "NetworkPolicy", "roitrack-redis")
    redis_pods = get(objects, "Deployment", "roitrack-redis")["spec"]["template"]["metadata"]["labels"]
    assert pol["spec"]["podSelector"]["matchLabels"].items() <= redis_pods.items()
    allowed = pol["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert (
        allowed.items()
        <= get(objects, "Deployment", "roitrack")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert get(objects, "Secret", "roitrack-tls")["type"] == "kubernetes.io/tls"
    toml = tmp_path / "roitrack.toml"
    toml.write_text(
        get(objects, "ConfigMap", "roitrack-config")["data"]["roitrack.toml"].replace(
            "/weights/", f"{tmp_path}/"
        )
    )
    (tmp_path / "yolov7.safetensors").write_bytes(b"x")
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    cfg = load_config(toml, environ={**plain, "ROITRACK_CHECK_PORT": "false", "ROITRACK_REPLICA_ID": "pod-0"})
    assert isinstance(cfg, ServerConfig) and cfg.state_store and cfg.snapshot_policy == "interval"
    assert cfg.port == 50051 and cfg.metrics_port == 9108


def test_pdb_and_hpa_target_the_servers(objects: list[dict[str, Any]]) -> None:
    dep = get(objects, "Deployment", "roitrack")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    pdb = get(objects, "PodDisruptionBudget", "roitrack")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = get(objects, "HorizontalPodAutoscaler", "roitrack")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "roitrack",
    }
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    names = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert names == {"roitrack_queue_depth_frames", "roitrack_frame_latency_p95_seconds"}
    # every HPA metric is produced by a prometheus-adapter rule from a family the server really exports
    rules = yaml.safe_load(get(objects, "ConfigMap", "roitrack-adapter-rules")["data"]["config.yaml"])[
        "rules"
    ]
    exported = {m.name for m in ServerMetrics().registry.collect()}
    produced = {}
    for rule in rules:
        series = re.match(r"([a-z_]+)\{", rule["seriesQuery"])[1]  # type: ignore[index]
        family = re.sub(r"_(bucket|count|sum)$", "", series)
        assert family in exported, family
        produced[rule["name"]["as"]] = rule
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]
    assert names <= produced.keys()


def test_prometheus_scrapes_the_servers(objects: list[dict[str, Any]]) -> None:
    dep = get(objects, "Deployment", "roitrack")
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9108"
    svc = get(objects, "Service", "roitrack")
    sm = get(objects, "ServiceMonitor", "roitrack")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_load_balancer_keeps_a_stream_on_one_replica(objects: list[dict[str, Any]]) -> None:
    svc = get(objects, "Service", "roitrack")
    assert svc["spec"]["clusterIP"] == "None"  # one DNS record per pod: Envoy balances pods, not a VIP
    envoy = yaml.safe_load(get(objects, "ConfigMap", "roitrack-envoy")["data"]["envoy.yaml"])
    listener = envoy["static_resources"]["listeners"][0]
    chain = listener["filter_chains"][0]
    assert chain["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    hcm = chain["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["hash_policy"] == [{"header": {"header_name": STREAM_ID_HEADER}}]
    assert route["timeout"] == "0s"  # streams are long-lived
    cluster = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == route["cluster"])
    assert cluster["lb_policy"] in ("RING_HASH", "MAGLEV") and cluster["type"] == "STRICT_DNS"
    addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"
    ]
    assert addr["address"] == svc["metadata"]["name"] and addr["port_value"] == 50051
    # a draining replica (health NOT_SERVING) leaves the ring at once, so its streams move
    assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == SERVICE_NAME
    assert "http2_protocol_options" in str(cluster["typed_extension_protocol_options"])
    spec = get(objects, "Deployment", "roitrack-envoy")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "roitrack-tls"}} in spec["volumes"]
    assert get(objects, "Service", "roitrack-lb")["spec"]["type"] == "LoadBalancer"
