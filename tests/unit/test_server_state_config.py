"""State-store settings: URL, policy, interval and lease are validated on load like every other setting."""

from __future__ import annotations

import pytest

from server.config import load_config
from server.state_store import parse_store_url
from tracker_core.errors import ConfigError

BASE = {"random_weights": True, "check_port": False}


def test_store_url_parses_host_port_db() -> None:
    a = parse_store_url("redis://roitrack-redis:6379/2")
    assert (a.host, a.port, a.db) == ("roitrack-redis", 6379, 2)
    assert str(parse_store_url("redis://127.0.0.1:7000")) == "redis://127.0.0.1:7000/0"
    assert parse_store_url("redis://[::1]:6379/0").host == "::1"


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "redis://host",
        "redis://host:0/0",
        "redis://host:6379/16",
        "rediss://h:1/0",
        "redis://h:1/0?x=1",
    ],
)
def test_bad_store_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="state_store"):
        parse_store_url(url)


def test_state_settings_from_env_toml_and_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    toml = tmp_path / "c.toml"
    toml.write_text('[server]\nstate_store = "redis://a:1/0"\nsnapshot_policy = "on-close"\n')
    cfg = load_config(toml, environ={"ROITRACK_STATE_STORE": "redis://b:2/1"}, flags=BASE)
    assert cfg.state_store == "redis://b:2/1" and cfg.snapshot_policy == "on-close"
    assert cfg.snapshot_interval_s == 2.0 and cfg.state_lease_s == 10.0 and cfg.replica_id is None
    assert load_config(environ={}, flags=BASE).state_store is None  # default: in memory only


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"state_store": "http://x:1"}, "state_store"),
        ({"snapshot_policy": "sometimes"}, "snapshot_policy"),
        ({"snapshot_interval_s": 0.0}, "snapshot_interval_s"),
        ({"state_lease_s": 0.5}, "state_lease_s"),
        ({"replica_id": "x" * 300}, "replica_id"),
    ],
)
def test_bad_state_settings_name_the_setting(flags: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(environ={}, flags={**BASE, **flags})
