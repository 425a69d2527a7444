"""`ugn download` against a real HTTP server on 127.0.0.1 (with Range support): success, skip, resume,
corrupt zip, zip-slip entry, server error."""

from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data.download import fetch, resolve_base_url, source_url
from unifiedgender.data.safezip import safe_unpack
from unifiedgender.data.sources import BASE_URL_ENV, DATASET_FOLDER, SOURCES, RemoteFile, select
from unifiedgender.errors import UserError


class MirrorServer:
    """Serves `files` (path -> bytes); `mode` switches between normal, 'error' (HTTP 500) and 'truncate'
    (announces the full length, sends half, closes). Records the Range header of every GET."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode = "normal"
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.ranges.append(self.headers.get("Range"))
                body = server.files.get(self.path.lstrip("/"))
                if server.mode == "error":
                    self.send_error(500, "Internal Server Error")
                    return
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                header = self.headers.get("Range")
                if header and header.startswith("bytes=") and server.mode == "normal":  # 'norange' ignores Range
                    start = int(header[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("ETag", f'"{hash(body)}"')
                self.end_headers()
                payload = body[start:]
                if server.mode == "truncate":
                    payload = payload[: len(payload) // 2]
                self.wfile.write(payload)
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def mirror(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    server = MirrorServer()
    yield server
    server.close()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


METRICS = RemoteFile("metrics", "metrics/m.csv")
runner = CliRunner()


def test_download_success_then_skip(mirror, tmp_path):
    mirror.files["metrics/m.csv"] = b"tag,bacc\nx,0.9\n" * 1000
    first = fetch(METRICS, tmp_path, mirror.url, log=lambda m: None)
    assert first.status == "downloaded"
    assert (tmp_path / "metrics/m.csv").read_bytes() == mirror.files["metrics/m.csv"]
    assert not list((tmp_path / "metrics").glob("*.part")) and not (tmp_path / "metrics/m.csv.download").exists()
    requests_before = len(mirror.ranges)
    second = fetch(METRICS, tmp_path, mirror.url, log=lambda m: None)
    assert second.status == "skipped" and len(mirror.ranges) == requests_before  # no request at all


def test_download_tampered_file_is_moved_aside_and_fetched_again(mirror, tmp_path):
    mirror.files["metrics/m.csv"] = b"a,b\n1,2\n"
    fetch(METRICS, tmp_path, mirror.url, log=lambda m: None)
    (tmp_path / "metrics/m.csv").write_bytes(b"a,b\n1,3\n")
    messages: list[str] = []
    assert fetch(METRICS, tmp_path, mirror.url, log=messages.append).status == "downloaded"
    assert "SHA-256 does not match" in messages[0]
    assert (tmp_path / "metrics/m.csv.bad").read_bytes() == b"a,b\n1,3\n"
    assert (tmp_path / "metrics/m.csv").read_bytes() == b"a,b\n1,2\n"


def test_download_resumes_after_interruption(mirror, tmp_path):
    body = bytes(range(256)) * 12_000  # 3 MB: the truncated half spans several of gdown's 512 KB chunks
    mirror.files["metrics/m.csv"] = body
    mirror.mode = "truncate"
    with pytest.raises(UserError, match="interrupted.*run the same command again to resume"):
        fetch(METRICS, tmp_path, mirror.url)
    assert not (tmp_path / "metrics/m.csv").exists()  # never a half file under the final name
    partial = list((tmp_path / "metrics").glob("m.csv.download*.part"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(body)
    kept = partial[0].stat().st_size
    mirror.mode = "normal"
    assert fetch(METRICS, tmp_path, mirror.url, log=lambda m: None).status == "downloaded"
    assert f"bytes={kept}-" in mirror.ranges
    assert (tmp_path / "metrics/m.csv").read_bytes() == body


def test_download_restarts_when_server_ignores_range(mirror, tmp_path):
    body = bytes(range(256)) * 12_000
    mirror.files["metrics/m.csv"] = body
    mirror.mode = "truncate"
    with pytest.raises(UserError, match="interrupted"):
        fetch(METRICS, tmp_path, mirror.url)
    mirror.mode = "norange"
    assert fetch(METRICS, tmp_path, mirror.url, log=lambda m: None).status == "downloaded"
    assert (tmp_path / "metrics/m.csv").read_bytes() == body
    assert list((tmp_path / "metrics").glob("*.part")) == []


def test_download_verifies_known_digest(mirror, tmp_path):
    mirror.files["metrics/m.csv"] = b"served bytes"
    remote = RemoteFile("metrics", "metrics/m.csv", sha256="0" * 64)
    with pytest.raises(UserError, match="failed verification.*SHA-256"):
        fetch(remote, tmp_path, mirror.url)
    assert list((tmp_path / "metrics").iterdir()) == []


def test_download_server_error_is_reported(mirror, tmp_path):
    mirror.mode = "error"
    with pytest.raises(UserError, match=r"HTTP 500 .*check the mirror"):
        fetch(METRICS, tmp_path, mirror.url)
    assert not (tmp_path / "metrics/m.csv").exists()


def test_download_missing_file_is_reported(mirror, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        fetch(METRICS, tmp_path, mirror.url)


def test_download_unreachable_server(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = MirrorServer()
    url = server.url
    server.close()
    with pytest.raises(UserError, match="cannot reach"):
        fetch(METRICS, tmp_path, url)


def test_unknown_drive_id_asks_for_a_mirror(monkeypatch):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    metrics = select("metrics")[0]
    with pytest.raises(UserError, match=f"publishes no Google Drive id.*--url BASE or set {BASE_URL_ENV}"):
        source_url(metrics, resolve_base_url(None))
    best = select("checkpoints", ("best-umcc",))[0]
    assert source_url(best, None) == ("https://drive.google.com/uc?id=1yK36dx8mdG5dvxZNNc50pHoALl77M9jX", True)
    monkeypatch.setenv(BASE_URL_ENV, "http://mirror.example/ugn/")
    assert source_url(best, resolve_base_url(None))[0] == "http://mirror.example/ugn/checkpoints/1752668630.pt"
    assert source_url(best, resolve_base_url("http://other"))[0] == "http://other/checkpoints/1752668630.pt"


def test_sources_table_is_consistent():
    assert {f.group for f in SOURCES} == {"dataset", "checkpoints", "metrics"}
    assert len({f.dest for f in SOURCES}) == len(SOURCES)
    assert [f.name for f in select("checkpoints", ("best-mag",))] == ["best_mag.pt"]
    zips = [f for f in SOURCES if f.extract_to]
    assert [f.name for f in zips] == ["aligned_dataset.zip"]


def test_cli_dataset_end_to_end(mirror, tmp_path):
    for split in ("train", "val", "test"):
        mirror.files[f"{DATASET_FOLDER}/{split}.csv"] = b"id,user_id\n"
    mirror.files[f"{DATASET_FOLDER}/aligned_dataset.zip"] = zip_bytes({
        "content/aligned_dataset/hands/H_1.jpg": b"hand", "content/aligned_dataset/faces/F_1.jpg": b"face"})
    args = ["download", "dataset", "--url", mirror.url, "--root", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    images = tmp_path / DATASET_FOLDER / "images/content/aligned_dataset"
    assert (images / "hands/H_1.jpg").read_bytes() == b"hand"
    assert "unpacked 2 files" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.output.count("present and verified, skipped") == 4
    assert "unpacked" not in again.output


def test_unpacked_folder_from_another_archive_is_refused(mirror, tmp_path):
    zip_remote = RemoteFile("dataset", "d/a.zip", extract_to="d/images")
    mirror.files["d/a.zip"] = zip_bytes({"x.jpg": b"one"})
    assert fetch(zip_remote, tmp_path, mirror.url, log=lambda m: None).unpacked == 1
    (tmp_path / "d/a.zip").unlink()
    mirror.files["d/a.zip"] = zip_bytes({"x.jpg": b"one", "y.jpg": b"two"})
    with pytest.raises(UserError, match="was unpacked from another a.zip; move it away"):
        fetch(zip_remote, tmp_path, mirror.url, log=lambda m: None)
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="exists but was not unpacked by ugn"):
        fetch(RemoteFile("dataset", "d/a.zip", extract_to="other"), tmp_path, mirror.url, log=lambda m: None)


def test_cli_metrics_without_source_fails_with_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    from unifiedgender.cli.app import main

    monkeypatch.setattr("sys.argv", ["ugn", "download", "metrics", "--root", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "publishes no Google Drive id" in capsys.readouterr().err
    assert not (tmp_path / "metrics").exists()


def test_cli_corrupt_zip(mirror, tmp_path):
    for split in ("train", "val", "test"):
        mirror.files[f"{DATASET_FOLDER}/{split}.csv"] = b"id\n"
    mirror.files[f"{DATASET_FOLDER}/aligned_dataset.zip"] = zip_bytes({"a.jpg": b"x" * 5000})[:-40]
    with pytest.raises(UserError, match="corrupt zip.*delete it and run the download again"):
        for remote in select("dataset"):
            fetch(remote, tmp_path, mirror.url, log=lambda m: None)
    assert not (tmp_path / DATASET_FOLDER / "images").exists()


# ---- safe unpacking on hand-made archives --------------------------------------------------------------

def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    path.write_bytes(zip_bytes(entries))
    return path


@pytest.mark.parametrize("name, message", [
    ("../evil.txt", "zip slip"),
    ("ok/../../evil.txt", "zip slip"),
    ("/etc/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
    ("..\\evil.txt", "zip slip"),
])
def test_unpack_refuses_escaping_entries(tmp_path, name, message):
    archive = write_zip(tmp_path / "a.zip", {"fine.txt": b"ok", name: b"evil"})
    with pytest.raises(UserError, match=message):
        safe_unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]  # no staging folder left behind


def test_unpack_refuses_symlink(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UserError, match="symbolic link"):
        safe_unpack(archive, tmp_path / "out")


def test_unpack_refuses_zip_bomb_and_oversize(tmp_path):
    archive = write_zip(tmp_path / "a.zip", {"zeros.bin": b"\0" * (8 * 1024 * 1024)})
    with pytest.raises(UserError, match="compression ratio over 200:1"):
        safe_unpack(archive, tmp_path / "out")
    small = write_zip(tmp_path / "b.zip", {"a.bin": bytes(range(256)) * 100})
    with pytest.raises(UserError, match="over the 1,000-byte cap"):
        safe_unpack(small, tmp_path / "out", max_total_bytes=1000)


def test_unpack_detects_crc_corruption(tmp_path):
    data = bytearray(zip_bytes({"a.txt": b"hello world " * 100}))
    index = data.index(b"PK\x03\x04") + 30 + len("a.txt") + 5
    data[index] ^= 0xFF  # flip one byte of the compressed payload
    archive = tmp_path / "a.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt zip"):
        safe_unpack(archive, tmp_path / "out")
