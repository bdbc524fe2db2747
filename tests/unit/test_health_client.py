"""``client.health`` argument checks and result wording (no network)."""

from __future__ import annotations

import pytest

from client.health import HealthResult, make_channel, validate_target
from tracker_core.errors import ConfigError, InvalidInputError


@pytest.mark.parametrize(
    "target", ["localhost:50051", "127.0.0.1:1", "[::1]:50051", "roitrack:65535", "unix:/run/roitrack.sock"]
)
def test_valid_targets_pass_unchanged(target):
    assert validate_target(target) == target


@pytest.mark.parametrize("target", ["", "localhost", ":50051", "host:0", "host:65536", "host:http", "a b:1"])
def test_invalid_targets_are_named_errors(target):
    with pytest.raises(InvalidInputError, match="HOST:PORT"):
        validate_target(target)


def test_mutual_tls_needs_cert_and_key_and_ca(tmp_path):
    with pytest.raises(ConfigError, match="go together"):
        make_channel("localhost:1", tls_ca=tmp_path / "ca.pem", tls_cert=tmp_path / "c.pem")
    with pytest.raises(ConfigError, match="need --tls-ca"):
        make_channel("localhost:1", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="cannot read CA certificate"):
        make_channel("localhost:1", tls_ca=tmp_path / "missing.pem")


def test_result_serving_only_when_answered_serving():
    assert HealthResult("h:1", "", "SERVING", answered=True).serving
    assert not HealthResult("h:1", "", "NOT_SERVING", answered=True).serving
    # A failed call whose status name happened to be "SERVING" can't exist, but answered guards it anyway.
    assert not HealthResult("h:1", "", "SERVING", answered=False).serving
    failed = HealthResult(
        "h:1", "roitrack.v1.Tracking", "UNAVAILABLE", answered=False, detail="connection refused"
    )
    assert failed.describe() == "service 'roitrack.v1.Tracking' at h:1: UNAVAILABLE: connection refused"
    assert HealthResult("h:1", "", "NOT_SERVING", answered=True).describe() == "server at h:1 is NOT_SERVING"
