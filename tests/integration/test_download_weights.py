"""``roitrack download-weights`` against a local HTTP server on loopback (never the network)."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from roitrack_cli import main as cli
from tracker_core.detector import read_meta
from tracker_core.detector.download import release_url
from tracker_core.errors import InvalidInputError


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/broken/"):
            # promise 1 MB, send 1 kB and hang up
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def file_server(tmp_path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "srv"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_and_convert_from_loopback(file_server, tmp_path, yolov7_reference, capsys):
    base, root = file_server
    shutil.copy(yolov7_reference / "yolov7-tiny-random-official-format.pt", root / "yolov7-tiny.pt")
    out = tmp_path / "weights"
    assert cli.main(["download-weights", "yolov7-tiny", "--dir", str(out), "--url-base", base]) == 0
    captured = capsys.readouterr()
    assert "yolov7-tiny.pt" in captured.err and "100%" in captured.err  # the tqdm progress bar
    meta = read_meta(out / "yolov7-tiny.safetensors")
    assert meta.arch == "yolov7-tiny"
    assert meta.source_sha256 == "93754d6d75ac4591e378f5ee45e928aa87cd9a679734702c97d58abf90bbd4fd"
    assert sorted(p.name for p in out.iterdir()) == ["yolov7-tiny.pt", "yolov7-tiny.safetensors"]


def test_http_404_is_a_clear_error(file_server, tmp_path, capsys):
    base, _ = file_server
    out = tmp_path / "weights"
    assert (
        cli.main(["download-weights", "yolov7", "--dir", str(out), "--url-base", base, "--no-progress"]) == 2
    )
    err = capsys.readouterr().err
    assert "roitrack download-weights: error:" in err and "HTTP 404" in err and "yolov7.pt" in err
    assert list(out.iterdir()) == []


def test_broken_off_download_leaves_nothing(file_server, tmp_path, capsys):
    base, _ = file_server
    out = tmp_path / "weights"
    rc = cli.main(
        ["download-weights", "yolov7", "--dir", str(out), "--url-base", f"{base}/broken", "--no-progress"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "incomplete" in err or "broke off" in err
    assert list(out.iterdir()) == []


def test_wrong_file_behind_the_url_is_refused(file_server, tmp_path, yolov7_reference, capsys):
    base, root = file_server
    shutil.copy(yolov7_reference / "yolov7-tiny-random-official-format.pt", root / "yolov7.pt")
    out = tmp_path / "weights"
    assert (
        cli.main(["download-weights", "yolov7", "--dir", str(out), "--url-base", base, "--no-progress"]) == 2
    )
    assert "holds yolov7-tiny weights, not yolov7" in capsys.readouterr().err
    assert not (out / "yolov7.safetensors").exists()
    assert [p.name for p in out.iterdir() if p.suffix == ".safetensors"] == []


def test_official_url_and_scheme_check():
    assert release_url("yolov7") == "https://github.com/WongKinYiu/yolov7/releases/download/v0.1/yolov7.pt"
    with pytest.raises(InvalidInputError, match="http"):
        release_url("yolov7-tiny", "file:///etc")
