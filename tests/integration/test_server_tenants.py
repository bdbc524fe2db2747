"""Issue 12 (4): a stream belongs to the principal that opened it (named bearer token, or mTLS subject); other
principals cannot list, close, resume or read it. Metrics carry no unbounded label values; the metrics port can
require a token.

Before the fix any token holder listed every stream id, closed other clients' streams and resumed (read, fed,
wiped) them; /metrics showed every stream id to anyone, one series per stream id ever seen.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pbg
from tests.integration.cert_harness import make_certs
from tests.integration.server_harness import (
    Lockstep,
    channel,
    free_port,
    gt_frame_req,
    open_req,
    running_server,
    stub,
)

pytestmark = pytest.mark.timeout(120)

ALICE, BOB = "alice-secret-1", "bob-secret-22"
TOKENS = f"alice={ALICE}, bob={BOB}"


def md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _ids(s: pbg.TrackingStub, token: str) -> list[tuple[str, bool]]:
    resp = await s.ListStreams(pb.ListStreamsRequest(), metadata=md(token))
    return [(x.stream_id, x.live) for x in resp.streams]


async def test_streams_belong_to_the_token_that_opened_them() -> None:
    async with running_server(tokens=TOKENS, resume_window_s=30.0) as srv, channel(srv) as ch:
        s = stub(ch)
        a = Lockstep(s, md(ALICE))
        await a.send(open_req("cam"))
        for i in range(1, 8):
            last = await a.step(gt_frame_req(i))
        alice_ids = sorted(t.track_id for t in last.tracks)
        assert len(alice_ids) == 2

        # bob sees none of alice's streams and cannot close them (NOT_FOUND: nothing says the id exists)
        assert await _ids(s, BOB) == []
        assert await _ids(s, ALICE) == [("cam", True)]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.CloseStream(pb.CloseStreamRequest(stream_id="cam"), metadata=md(BOB))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no stream 'cam'" in (
            err.value.details() or ""
        )

        # bob's "cam" is his own stream, live next to alice's: a resume finds nothing of hers
        b = Lockstep(s, md(BOB))
        await b.send(open_req("cam", resume=True))
        assert dict(await b.call.initial_metadata())["roitrack-resumed"] == "false"
        fresh = await b.step(gt_frame_req(1))  # frame 1 again: alice's tracker (at frame 7) would refuse it
        assert not fresh.HasField("error") and all(t.age_s == 0 for t in fresh.tracks)
        assert await _ids(s, BOB) == [("cam", True)]
        assert (await a.step(gt_frame_req(8))).frame_id == 8  # alice's call is untouched
        assert await b.finish() == grpc.StatusCode.OK

        # alice detaches; bob resumes and closes "cam" (his own) - alice's detached stream survives both
        assert await a.finish() == grpc.StatusCode.OK
        b2 = Lockstep(s, md(BOB))
        await b2.send(open_req("cam", resume=True))
        assert dict(await b2.call.initial_metadata())["roitrack-resumed"] == "true"
        assert await b2.finish() == grpc.StatusCode.OK
        await s.CloseStream(pb.CloseStreamRequest(stream_id="cam"), metadata=md(BOB))
        assert await _ids(s, ALICE) == [("cam", False)]
        assert [x.stream_id for x in srv.registry.sessions()] == ["cam"]
        assert srv.registry.sessions()[0].owner == "alice"

        # alice resumes with her tracker and her track IDs
        a2 = Lockstep(s, md(ALICE))
        await a2.send(open_req("cam", resume=True))
        assert dict(await a2.call.initial_metadata())["roitrack-resumed"] == "true"
        assert sorted(t.track_id for t in (await a2.step(gt_frame_req(9))).tracks) == alice_ids
        assert await a2.finish() == grpc.StatusCode.OK


async def test_single_token_config_still_shares_one_namespace() -> None:
    async with running_server(token="only-one-token") as srv, channel(srv) as ch:
        s = stub(ch)
        a = Lockstep(s, md("only-one-token"))
        await a.send(open_req("x"))
        await a.step(gt_frame_req(1))
        assert await _ids(s, "only-one-token") == [("x", True)]
        assert srv.registry.sessions()[0].owner == "default"
        assert await a.finish() == grpc.StatusCode.OK


@pytest.fixture(scope="module")
def two_client_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and client certificates for CN=cam-a and CN=cam-b."""
    return make_certs(tmp_path_factory.mktemp("tenant-certs"), ("server", "cam-a", "cam-b"))


async def test_mtls_subject_owns_its_streams(two_client_certs: Path) -> None:
    d = two_client_certs
    mtls = dict(
        tls_cert=str(d / "server.crt"), tls_key=str(d / "server.key"), tls_client_ca=str(d / "ca.crt")
    )

    def chan(name: str) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(
            (d / "ca.crt").read_bytes(), (d / f"{name}.key").read_bytes(), (d / f"{name}.crt").read_bytes()
        )
        return grpc.aio.secure_channel(f"127.0.0.1:{srv.port}", creds)

    async with running_server(**mtls) as srv, chan("cam-a") as ca, chan("cam-b") as cb:
        sa, sb = stub(ca), stub(cb)
        a = Lockstep(sa)
        await a.send(open_req("door"))
        await a.step(gt_frame_req(1))
        assert [x.stream_id for x in (await sa.ListStreams(pb.ListStreamsRequest())).streams] == ["door"]
        assert list((await sb.ListStreams(pb.ListStreamsRequest())).streams) == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sb.CloseStream(pb.CloseStreamRequest(stream_id="door"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "CN=cam-a" in srv.registry.sessions()[0].owner
        assert await a.finish() == grpc.StatusCode.OK


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_metrics_labels_are_bounded_and_the_port_can_require_a_token() -> None:
    port = free_port()
    cfg = dict(metrics_port=port, metrics_stream_labels=1, metrics_token="scrape-secret", resume_window_s=0.0)
    async with running_server(**cfg) as srv, channel(srv) as ch:
        s = stub(ch)
        calls = []
        for sid in ("cam-first", "cam-second", "cam-third"):
            c = Lockstep(s)
            await c.send(open_req(sid))
            await c.step(gt_frame_req(1))
            calls.append(c)
        url = f"http://127.0.0.1:{port}/metrics"
        code, body = await asyncio.to_thread(_get, url)
        assert code == 401 and "Bearer" in body
        assert (await asyncio.to_thread(_get, url, "wrong-token"))[0] == 401
        code, text = await asyncio.to_thread(_get, url, "scrape-secret")
        assert code == 200
        # one stream has its own label (the cap is 1); the others share "other"
        assert 'roitrack_frames_processed_total{stream="cam-first"} 1.0' in text
        assert 'roitrack_frames_processed_total{stream="other"} 2.0' in text
        assert "cam-second" not in text and "cam-third" not in text
        for c in calls:
            assert await c.finish() == grpc.StatusCode.OK
        await asyncio.sleep(0.1)
        _, text = await asyncio.to_thread(_get, url, "scrape-secret")
        assert 'stream="cam-first"' not in text  # a forgotten stream's series go


async def test_one_principals_unopened_calls_cannot_block_another_principals_streams() -> None:
    """Issue 19 (8): calls that had not sent `open` held server-wide waiting slots uncounted per principal, so a
    tenant limited to 2 streams kept 64 such calls open and another tenant's new streams failed 24 of 25 and its
    resumes 21 of 25 (RESOURCE_EXHAUSTED "64 calls are already waiting"). Now one principal holds at most
    max_waiting_per_principal of them (16 of the 64 slots by default); the rest stay free for the others."""
    async with (
        running_server(tokens=TOKENS, max_streams_per_principal=2, open_timeout_s=30.0) as srv,
        channel(srv) as ch,
    ):
        s = stub(ch)
        # bob has a stream that he will resume while alice holds her calls
        b = Lockstep(s, md(BOB))
        await b.send(open_req("cam"))
        await b.step(gt_frame_req(1))
        assert await b.finish() == grpc.StatusCode.OK

        held = [s.Track(metadata=md(ALICE)) for _ in range(64)]  # connect, never send `open`
        while sum(srv._state.waiting.values()) < srv.config.max_waiting_per_principal:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        assert srv._state is not None and srv._state.waiting == {"alice": 16}
        # alice's calls past her share are refused at once, naming the setting
        deadline = asyncio.get_running_loop().time() + 30
        while sum(c.done() for c in held) < 64 - 16 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        codes = [await c.code() for c in held if c.done()]
        assert len(codes) == 64 - 16 and set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        details = {await c.details() for c in held if c.done()}
        assert details == {
            "this principal already has 16 calls waiting for their `open` message "
            "(max_waiting_per_principal 16)"
        }, details

        # bob's new streams and his resumes all succeed meanwhile
        for k in range(25):
            n = Lockstep(s, md(BOB))
            await n.send(open_req(f"new-{k}"))
            assert not (await n.step(gt_frame_req(1))).HasField("error")
            assert await n.finish() == grpc.StatusCode.OK
        for k in range(25):
            r = Lockstep(s, md(BOB))
            await r.send(open_req("cam", resume=True))
            assert dict(await r.call.initial_metadata())["roitrack-resumed"] == "true"
            assert not (await r.step(gt_frame_req(2 + k))).HasField("error")
            assert await r.finish() == grpc.StatusCode.OK
        assert srv._state.waiting == {"alice": 16}  # alice still holds hers
        for call in held:
            call.cancel()
