"""Client connection helpers: metadata sent on every Track call."""

from __future__ import annotations


def test_stream_metadata_carries_the_affinity_header_and_token():
    from client.connection import STREAM_ID_HEADER, stream_metadata

    md = dict(stream_metadata("s3cret", "cam-7"))
    assert md[STREAM_ID_HEADER] == "cam-7"
    assert md["authorization"] == "Bearer s3cret"
    assert dict(stream_metadata(None, "cam-8")) == {STREAM_ID_HEADER: "cam-8"}
