"""`ugn download` against a real HTTP server on 127.0.0.1 (with Range support): success, skip, resume,
corrupt zip, zip-slip entry, server error, error pages answered with HTTP 200, query strings; and the Google
Drive path (id -> URL -> gdown) with gdown's download functions replaced by recorders, since Drive cannot be
reached here."""

from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import gdown
import pytest
import torch
from gdown.download import GoogleDriveFileToDownload, get_url_from_gdrive_confirmation
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data import download
from unifiedgender.data.download import fetch, mirror_url, resolve_base_url, source_url
from unifiedgender.data.safezip import safe_unpack
from unifiedgender.data.sources import (BASE_URL_ENV, CHECKPOINT_FOLDER_ID, DATASET_FOLDER, SOURCES, RemoteFile,
                                        release_run_tag, select)
from unifiedgender.errors import UserError


class MirrorServer:
    """Serves `files` (path -> bytes); `mode` switches between normal, 'error' (HTTP 500) and 'truncate'
    (announces the full length, sends half, closes). Records the Range header of every GET."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.statuses: dict[str, int] = {}  # path -> status to answer with the file's bytes (e.g. 404 pages)
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.mode = "normal"
        self.ranges: list[str | None] = []
        self.paths: list[str] = []  # every requested path, with its query string
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.ranges.append(self.headers.get("Range"))
                server.paths.append(self.path)
                key = unquote(urlsplit(self.path).path).lstrip("/")
                body = server.files.get(key)
                if key in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[key])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
                    self.send_response(server.statuses.get(key, 200))
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


METRICS = RemoteFile("metrics", "metrics/m.csv", "id-m")
BLOB = RemoteFile("metrics", "metrics/m.bin", "id-b")  # no expected type: any content but an error page
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
    mirror.files["metrics/m.bin"] = body
    mirror.mode = "truncate"
    with pytest.raises(UserError, match="interrupted.*run the same command again to resume"):
        fetch(BLOB, tmp_path, mirror.url)
    assert not (tmp_path / "metrics/m.bin").exists()  # never a half file under the final name
    partial = list((tmp_path / "metrics").glob("m.bin.download*.part"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(body)
    kept = partial[0].stat().st_size
    mirror.mode = "normal"
    assert fetch(BLOB, tmp_path, mirror.url, log=lambda m: None).status == "downloaded"
    assert f"bytes={kept}-" in mirror.ranges
    assert (tmp_path / "metrics/m.bin").read_bytes() == body


def test_download_restarts_when_server_ignores_range(mirror, tmp_path):
    body = bytes(range(256)) * 12_000
    mirror.files["metrics/m.bin"] = body
    mirror.mode = "truncate"
    with pytest.raises(UserError, match="interrupted"):
        fetch(BLOB, tmp_path, mirror.url)
    mirror.mode = "norange"
    assert fetch(BLOB, tmp_path, mirror.url, log=lambda m: None).status == "downloaded"
    assert (tmp_path / "metrics/m.bin").read_bytes() == body
    assert list((tmp_path / "metrics").glob("*.part")) == []


def test_download_verifies_known_digest(mirror, tmp_path):
    remote = RemoteFile("metrics", "metrics/m.csv", "id", sha256="0" * 64)
    mirror.files["metrics/m.csv"] = b"a,b\n1,2\n"
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
    zip_remote = RemoteFile("dataset", "d/a.zip", "id", extract_to="d/images")
    mirror.files["d/a.zip"] = zip_bytes({"x.jpg": b"one"})
    assert fetch(zip_remote, tmp_path, mirror.url, log=lambda m: None).unpacked == 1
    (tmp_path / "d/a.zip").unlink()
    mirror.files["d/a.zip"] = zip_bytes({"x.jpg": b"one", "y.jpg": b"two"})
    with pytest.raises(UserError, match="was unpacked from another a.zip; move it away"):
        fetch(zip_remote, tmp_path, mirror.url, log=lambda m: None)
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="exists but was not unpacked by ugn"):
        fetch(RemoteFile("dataset", "d/a.zip", "id", extract_to="other"), tmp_path, mirror.url, log=lambda m: None)


def test_cli_corrupt_zip(mirror, tmp_path):
    for split in ("train", "val", "test"):
        mirror.files[f"{DATASET_FOLDER}/{split}.csv"] = b"id,user_id\n"
    mirror.files[f"{DATASET_FOLDER}/aligned_dataset.zip"] = zip_bytes({"a.jpg": b"x" * 5000})[:-40]
    with pytest.raises(UserError, match="not a zip archive; nothing was kept"):
        for remote in select("dataset"):
            fetch(remote, tmp_path, mirror.url, log=lambda m: None)
    assert not (tmp_path / DATASET_FOLDER / "images").exists()
    assert not list((tmp_path / DATASET_FOLDER).glob("aligned_dataset.zip*"))


# ---- what arrived must be the file: error pages answered with HTTP 200, types by magic bytes -----------

QUOTA_PAGE = (b'<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>'
              b'<p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>'
              b'<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please '
              b'try accessing the file again later.</p><a href="https://accounts.google.com/ServiceLogin">Sign in</a>'
              b'</body></html>')
VIRUS_PAGE = (b'<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
              b'<p>Google Drive can&#39;t scan this file for viruses.</p><p>1752668630.pt (87M) is too large for '
              b'Google to scan for viruses. Would you still like to download this file?</p>'
              b'<a href="https://accounts.google.com/ServiceLogin">Sign in</a></body></html>')
NOT_FOUND_PAGE = (b'<!DOCTYPE html><html lang="en"><head><title>Google Drive - Page Not Found</title></head><body>'
                  b'<p>Sorry, the file you have requested does not exist.</p><p>Make sure that you have the correct '
                  b'URL and the file exists.</p></body></html>')
LOGIN_PAGE = (b'<!doctype html><html><head><title>Sign in - Google Accounts</title></head><body><form>'
              b'<h1>Sign in</h1><div>to continue to Google Drive</div></form></body></html>')
PAGES = {"quota": (QUOTA_PAGE, "download quota exceeded", "retry in a few hours"),
         "virus": (VIRUS_PAGE, "virus-scan warning page", "run the same command again"),
         "not found": (NOT_FOUND_PAGE, "'file not found' page", "removed or moved: use --url with a mirror"),
         "login": (LOGIN_PAGE, "Google sign-in page", "use --url with a mirror")}
UMCC = select("checkpoints", ("best-umcc",))[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("kind", PAGES)
def test_mirror_error_page_with_http_200_is_not_stored(mirror, tmp_path, kind):
    page, what, _ = PAGES[kind]
    mirror.files[UMCC.dest] = page
    with pytest.raises(UserError, match=f"did not serve the file but .*{what}.*nothing was kept: check the mirror") as info:
        fetch(UMCC, tmp_path, mirror.url)
    assert "\n" not in str(info.value) and UMCC.dest in str(info.value)
    assert leftovers(tmp_path / "checkpoints") == []  # no file, no .part, no digest


def test_error_page_then_good_mirror_downloads_the_real_file(mirror, tmp_path):
    """Issue 12.1: the page must not become the file with a recorded digest that a rerun calls verified."""
    mirror.files[UMCC.dest] = b'<html><body>{"error": "rate limited"}</body></html>'
    with pytest.raises(UserError, match="an HTML page"):
        fetch(UMCC, tmp_path, mirror.url)
    buffer = io.BytesIO()
    torch.save({"classifier.weight": torch.zeros(1, 4)}, buffer)
    mirror.files[UMCC.dest] = buffer.getvalue()
    assert fetch(UMCC, tmp_path, mirror.url, log=lambda m: None).status == "downloaded"
    assert (tmp_path / UMCC.dest).read_bytes() == buffer.getvalue()


def test_stored_error_page_with_a_recorded_digest_is_not_present_and_verified(mirror, tmp_path):
    """A bad file stored by an older version (with its digest) is checked again, moved aside and re-fetched."""
    stored = tmp_path / "metrics/m.csv"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"<!DOCTYPE html><html>Sign in - Google Accounts</html>")
    from unifiedgender.data.dedup import sha256_file

    stored.with_name("m.csv.sha256").write_text(f"{sha256_file(stored)}  m.csv\n")
    mirror.files["metrics/m.csv"] = b"tag,bacc\nx,0.9\n"
    messages: list[str] = []
    assert fetch(METRICS, tmp_path, mirror.url, log=messages.append).status == "downloaded"
    assert "holds an HTML page, not the file" in messages[0]
    assert stored.read_bytes() == b"tag,bacc\nx,0.9\n"
    assert fetch(METRICS, tmp_path, mirror.url, log=messages.append).status == "skipped"


@pytest.mark.parametrize("dest, body, problem", [
    ("metrics/m.csv", b'{"error": {"code": 403, "message": "quota"}}', "a JSON answer"),
    ("metrics/m.csv", b"\x00\x01binary", "binary data, not a CSV table"),
    ("metrics/m.csv", b"just one column\n", "no CSV header"),
    ("d/a.zip", b"not a zip at all", "not a zip archive"),
    ("c/m.pt", zip_bytes({"weights.bin": b"x"}), "not a PyTorch file"),
    ("c/m.pt", b"", "an empty file"),
])
def test_content_is_checked_by_type(mirror, tmp_path, dest, body, problem):
    mirror.files[dest] = body
    with pytest.raises(UserError, match=f"did not serve the file but .*{problem}"):
        fetch(RemoteFile("x", dest, "id"), tmp_path, mirror.url)
    assert leftovers((tmp_path / dest).parent) == []


def test_legacy_torch_files_are_accepted(mirror, tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False)
    mirror.files["c/old.pt"] = buffer.getvalue()
    assert fetch(RemoteFile("x", "c/old.pt", "id"), tmp_path, mirror.url, log=lambda m: None).status == "downloaded"


def test_base_url_with_query_string_builds_per_file_urls(mirror, tmp_path, monkeypatch):
    assert mirror_url("https://m.example/ugn/?token=a%2Fb&x=1", UMCC.dest) == \
        "https://m.example/ugn/checkpoints/1752668630.pt?token=a%2Fb&x=1"
    assert mirror_url("https://m.example", "a b/c=d.pt") == "https://m.example/a%20b/c=d.pt"
    mirror.files["metrics/m.csv"] = b"a,b\n1,2\n"
    mirror.files["metrics/n.csv"] = b"c,d\n3,4\n"
    base = f"{mirror.url}/?token=secret"
    fetch(METRICS, tmp_path, base, log=lambda m: None)
    fetch(RemoteFile("metrics", "metrics/n.csv", "id"), tmp_path, base, log=lambda m: None)
    assert mirror.paths == ["/metrics/m.csv?token=secret", "/metrics/n.csv?token=secret"]
    assert (tmp_path / "metrics/n.csv").read_bytes() == b"c,d\n3,4\n"
    monkeypatch.setenv(BASE_URL_ENV, " http://env.example/x?k=v ")
    assert source_url(METRICS, resolve_base_url(None))[0] == "http://env.example/x/metrics/m.csv?k=v"
    assert source_url(METRICS, resolve_base_url("http://other"))[0] == "http://other/metrics/m.csv"


# ---- the Google Drive path: every id -> URL -> gdown call, with gdown replaced by a recorder ------------

def fixture_bytes(remote: RemoteFile) -> bytes:
    """A small file in the format the release publishes for this row."""
    if remote.kind == "zip":
        return zip_bytes({"content/aligned_dataset/faces/F_1.jpg": b"face", "content/aligned_dataset/hands/H_1.jpg": b"hand"})
    if remote.kind == "csv":
        return b"id,user_id,gender\n1,u1,male\n"
    buffer = io.BytesIO()
    torch.save({"state_dict": {"classifier.weight": torch.zeros(1, 4)}}, buffer)
    return buffer.getvalue()


class GdownRecorder:
    """Stands in for gdown.download (Drive is unreachable here): records each call and writes `bodies[url]`."""

    def __init__(self, bodies: dict[str, bytes], fail: dict[str, Exception] | None = None) -> None:
        self.bodies, self.fail, self.calls = bodies, fail or {}, []

    def __call__(self, url, output, **kwargs):
        self.calls.append({"url": url, "output": output, **kwargs})
        if url in self.fail:
            raise self.fail[url]
        body = self.bodies[url]
        Path(output).write_bytes(body)
        if kwargs.get("hasher") is not None:
            kwargs["hasher"].update(body)
        return output


@pytest.mark.parametrize("remote", SOURCES, ids=[f.name for f in SOURCES])
def test_every_release_file_goes_from_its_drive_id_to_gdown(tmp_path, monkeypatch, remote):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    url = f"https://drive.google.com/uc?id={remote.drive_id}"
    recorder = GdownRecorder({url: fixture_bytes(remote)})
    monkeypatch.setattr(gdown, "download", recorder)
    outcome = fetch(remote, tmp_path, resolve_base_url(None), log=lambda m: None)
    assert [call["url"] for call in recorder.calls] == [url]
    assert recorder.calls[0]["use_cookies"] is True and recorder.calls[0]["resume"] is True
    assert outcome.status == "downloaded" and (tmp_path / remote.dest).read_bytes() == fixture_bytes(remote)
    assert (tmp_path / f"{remote.dest}.sha256").is_file()
    if remote.extract_to:
        assert (tmp_path / remote.extract_to / "content/aligned_dataset/faces/F_1.jpg").read_bytes() == b"face"
    assert fetch(remote, tmp_path, None, log=lambda m: None).status == "skipped" and len(recorder.calls) == 1


def test_readme_step_1_dataset_download_then_import(tmp_path, monkeypatch):
    """`ugn download dataset` (Drive answered by the recorder with files in the release's format), then
    `ugn data import hagrid-derived` on the result, as the README's step 1 runs it."""
    from test_data_importers import make_hagrid

    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    release = make_hagrid(tmp_path / "release")
    images = release / "images/content"  # the zip carries content/aligned_dataset/...
    archive = zip_bytes({str(p.relative_to(images)): p.read_bytes() for p in images.rglob("*.jpg")})
    bodies = {f"https://drive.google.com/uc?id={f.drive_id}":
              archive if f.kind == "zip" else (release / f.name).read_bytes() for f in select("dataset")}
    monkeypatch.setattr(gdown, "download", GdownRecorder(bodies))
    root = tmp_path / "root"
    result = runner.invoke(app, ["download", "dataset", "--root", str(root)])
    assert result.exit_code == 0, result.output
    imported = runner.invoke(app, ["data", "import", "hagrid-derived", str(root / DATASET_FOLDER), "-o",
                                   str(tmp_path / "hagrid.csv")])
    assert imported.exit_code == 0, imported.output
    import pandas as pd

    manifest = pd.read_csv(tmp_path / "hagrid.csv")
    assert len(manifest) == 8 and set(manifest["modality"]) == {"hand", "face"}


def test_release_table_has_the_published_ids():
    ids = {f.name: f.drive_id for f in SOURCES}
    assert ids == {
        "aligned_dataset.zip": "1-52CWGkVhs4k3uWtvAdSz7tvplSX0_84", "train.csv": "1W136bhwoVzT_ipjzABLie377wNNW8H6b",
        "val.csv": "1hilEWBh1GHsi469CQ5zckZnmqBOMo73q", "test.csv": "1dXKcOGVHGKRSERFoVN1HSSM-g7SlWnlf",
        "final_metrics_with_full_configurations.csv": "1jLmMtNAKdMfsJaigezZz-iJa-_T624Kv",
        "1752668630.pt": "1yK36dx8mdG5dvxZNNc50pHoALl77M9jX",
        "tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42.pt": "1dtaaEXrHwNI_vhO327DyUL74_5gFCeSX",
    }
    assert CHECKPOINT_FOLDER_ID == "1iq91ulrO0WSW778Qd0-O9cD09pe4WaR5"
    assert [f.name for f in select("checkpoints", ("best-mag",))] == ["tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42.pt"]
    assert release_run_tag("1752668630.pt") == "tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0"


def folder_entries(root: Path, names: dict[str, str]) -> list:
    return [GoogleDriveFileToDownload(id=i, path=n, local_path=str(root / "checkpoints" / n))
            for n, i in names.items()]


def test_cli_all_checkpoints_lists_the_drive_folder_and_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    names = {"1752668630.pt": "1yK36dx8mdG5dvxZNNc50pHoALl77M9jX", "1752000001.pt": "idA", "sub/extra.pt": "idB"}
    listing: list[dict] = []

    def list_folder(**kwargs):
        listing.append(kwargs)
        return folder_entries(tmp_path, names)

    monkeypatch.setattr(gdown, "download_folder", list_folder)
    bodies = {f"https://drive.google.com/uc?id={i}": fixture_bytes(UMCC) for i in names.values()}
    bodies["https://drive.google.com/uc?id=1dtaaEXrHwNI_vhO327DyUL74_5gFCeSX"] = fixture_bytes(UMCC)  # best MAG
    interrupted = gdown.exceptions.DownloadError("Download is incomplete: received 10 bytes")
    recorder = GdownRecorder(bodies, fail={"https://drive.google.com/uc?id=idA": interrupted})
    monkeypatch.setattr(gdown, "download", recorder)
    args = ["download", "checkpoints", "--root", str(tmp_path)]
    first = runner.invoke(app, args)
    assert first.exit_code != 0 and "interrupted" in str(first.exception)
    assert listing[0]["url"] == "https://drive.google.com/drive/folders/1iq91ulrO0WSW778Qd0-O9cD09pe4WaR5"
    assert listing[0]["skip_download"] is True
    recorder.fail.clear()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "checkpoints/1752668630.pt: present and verified, skipped" in second.output
    assert [c["url"].rsplit("=", 1)[1] for c in recorder.calls] == [
        "1yK36dx8mdG5dvxZNNc50pHoALl77M9jX", "idA", "idA", "idB", "1dtaaEXrHwNI_vhO327DyUL74_5gFCeSX"]
    for name in [*names, "tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42.pt"]:
        assert (tmp_path / "checkpoints" / name).read_bytes() == fixture_bytes(UMCC)


def test_folder_entries_outside_the_folder_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(gdown, "download_folder", lambda **kw: folder_entries(tmp_path, {"../evil.pt": "x"}))
    with pytest.raises(UserError, match="refusing folder entry '../evil.pt'"):
        download.release_files("checkpoints", (), None, tmp_path)


def test_unlistable_folder_gives_one_line(tmp_path, monkeypatch):
    def refuse(**kwargs):
        raise gdown.exceptions.FileURLRetrievalError("Cannot retrieve the folder information\n\nfrom the link")

    monkeypatch.setattr(gdown, "download_folder", refuse)
    with pytest.raises(UserError, match=r"cannot list the release's checkpoint folder .*--best-umcc") as info:
        download.release_files("checkpoints", (), None, tmp_path)
    assert "\n" not in str(info.value)


def test_with_a_mirror_all_checkpoints_are_the_named_ones(tmp_path):
    messages: list[str] = []
    files = download.release_files("checkpoints", (), "http://mirror", tmp_path, log=messages.append)
    assert files == select("checkpoints") and "no folder listing" in messages[0]


@pytest.mark.parametrize("kind", PAGES)
def test_drive_pages_that_are_not_the_file_give_one_line_each(mirror, tmp_path, monkeypatch, kind):
    """gdown raises what it raises on that page (its own parser run on it); the page itself is served by the
    local server standing in for drive.google.com, as Drive serves it (404 for not found, a redirect to sign in)."""
    page, what, advice = PAGES[kind]
    monkeypatch.setattr(download, "DRIVE_FILE_URL", mirror.url + "/uc/{id}")
    mirror.files[f"uc/{UMCC.drive_id}"] = page
    if kind == "not found":
        mirror.statuses[f"uc/{UMCC.drive_id}"] = 404
    if kind == "login":
        mirror.redirects[f"uc/{UMCC.drive_id}"] = "/ServiceLogin?continue=drive"
        mirror.files["ServiceLogin"] = page
    try:
        get_url_from_gdrive_confirmation(page.decode())
        pytest.fail("gdown parsed a download link from an error page")
    except gdown.exceptions.FileURLRetrievalError as exc:
        refusal = gdown.exceptions.FileURLRetrievalError(f"Failed to retrieve file url:\n\n\t{exc}\n\nbut Gdown can't.")
    url = mirror.url + f"/uc/{UMCC.drive_id}"
    monkeypatch.setattr(gdown, "download", GdownRecorder({}, fail={url: refusal}))
    with pytest.raises(UserError, match=f"did not serve the file but .*{what}.*nothing was kept: .*{advice}") as info:
        fetch(UMCC, tmp_path, None)
    assert "\n" not in str(info.value) and str(info.value).startswith(UMCC.dest)
    assert leftovers(tmp_path / "checkpoints") == []


def test_cli_quota_page_is_one_error_line_with_exit_2(tmp_path, monkeypatch, capsys):
    from unifiedgender.cli.app import main

    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    try:
        get_url_from_gdrive_confirmation(QUOTA_PAGE.decode())
    except gdown.exceptions.FileURLRetrievalError as exc:
        refusal = gdown.exceptions.FileURLRetrievalError(f"Failed to retrieve file url:\n\n\t{exc}\n\nbut Gdown can't.")
    monkeypatch.setattr(gdown, "download", GdownRecorder({}, fail={f"https://drive.google.com/uc?id={UMCC.drive_id}": refusal}))
    monkeypatch.setattr("sys.argv", ["ugn", "download", "checkpoints", "--best-umcc", "--root", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: checkpoints/1752668630.pt: ") and "download quota exceeded" in err
    assert leftovers(tmp_path / "checkpoints") == []


def test_drive_page_saved_as_the_file_is_named_and_dropped(tmp_path, monkeypatch):
    """Should gdown ever save Drive's page as the file, the content check names it with Drive's advice."""
    monkeypatch.setattr(gdown, "download", GdownRecorder({f"https://drive.google.com/uc?id={UMCC.drive_id}": QUOTA_PAGE}))
    with pytest.raises(UserError, match="but Google Drive's 'download quota exceeded' page; nothing was kept: retry in a few hours"):
        fetch(UMCC, tmp_path, None)
    assert leftovers(tmp_path / "checkpoints") == []


def test_unnamed_drive_refusal_still_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "DRIVE_FILE_URL", "http://127.0.0.1:9/uc/{id}")  # nothing listens: no page
    refusal = gdown.exceptions.FileURLRetrievalError("Failed to retrieve file url:\n\n\tCannot retrieve the public link")
    monkeypatch.setattr(gdown, "download", GdownRecorder({}, fail={"http://127.0.0.1:9/uc/" + UMCC.drive_id: refusal}))
    with pytest.raises(UserError, match=r"did not serve .*Cannot retrieve the public link.*retry later or use --url") as info:
        fetch(UMCC, tmp_path, None)
    assert "\n" not in str(info.value)


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
