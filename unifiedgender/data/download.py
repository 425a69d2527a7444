"""`ugn download`: fetch release files with gdown, check what arrived, verify it, unpack zips safely.

Every file is downloaded to `<dest>.download` (gdown keeps the partial bytes in `<dest>.downloadXXXXXXXX.part`
and resumes from them with an HTTP Range request), checked (it must look like its kind: a zip archive, a CSV
table, a PyTorch file, never an HTML/JSON error page; and match a known size/SHA-256), and only then renamed
to its final name, so a final name always holds a complete, checked file. Its SHA-256 is written to
`<dest>.sha256` so later runs can verify it and skip it; a stored file is checked again on every run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit, urlunsplit

from unifiedgender.data.dedup import sha256_file
from unifiedgender.data.filecheck import HEAD_BYTES, content_problem, error_page, markup_kind, page_text, read_head
from unifiedgender.data.safezip import MARKER, marker_text, safe_unpack
from unifiedgender.data.sources import BASE_URL_ENV, CHECKPOINT_FOLDER, CHECKPOINT_FOLDER_ID, RemoteFile, select
from unifiedgender.errors import UserError

ProgressCallback = Callable[[str, int, "int | None"], None]  # (file name, bytes so far, total or None)
DRIVE_FILE_URL = "https://drive.google.com/uc?id={id}"
DRIVE_FOLDER_URL = "https://drive.google.com/drive/folders/{id}"
TIMEOUT_S = 60
MIRROR_HINT = f"use --url with a mirror (or {BASE_URL_ENV})"


@dataclass
class Outcome:
    """What happened to one file: 'downloaded', 'skipped' (present and verified) or 'unverified' (present, no digest)."""

    remote: RemoteFile
    path: Path
    status: str
    unpacked: int | None = None  # files unpacked from a zip in this run


def resolve_base_url(option: str | None) -> str | None:
    """--url wins over UGN_DOWNLOAD_BASE_URL; None means Google Drive."""
    base = (option or os.environ.get(BASE_URL_ENV) or "").strip()
    return base or None


def mirror_url(base_url: str, dest: str) -> str:
    """BASE/<dest>, keeping BASE's query string (e.g. ?token=...) after the path."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{quote(dest, safe='/=')}"))


def source_url(remote: RemoteFile, base_url: str | None) -> tuple[str, bool]:
    """(url, is_drive) for a file: the mirror's copy when a base URL is given, else its Google Drive id."""
    if base_url:
        return mirror_url(base_url, remote.dest), False
    return DRIVE_FILE_URL.format(id=remote.drive_id), True


def release_files(group: str, tags: tuple[str, ...], base_url: str | None, root: Path,
                  log: Callable[[str], None] = print) -> list[RemoteFile]:
    """The files `ugn download GROUP` fetches: the table's rows, or for all checkpoints from Google Drive,
    every file of the release's checkpoint folder (listed with gdown's folder download)."""
    if group != "checkpoints" or tags:
        return select(group, tags)
    if base_url:
        log("a mirror has no folder listing: fetching the checkpoints named in the sources table")
        return select(group)
    return list_checkpoint_folder(root)


def list_checkpoint_folder(root: Path) -> list[RemoteFile]:
    """One RemoteFile per file in the release's Drive checkpoint folder; the table's rows keep their tags."""
    import gdown  # lazy: pulls in requests and bs4
    import requests

    url = DRIVE_FOLDER_URL.format(id=CHECKPOINT_FOLDER_ID)
    try:
        entries = gdown.download_folder(url=url, output=str(root / CHECKPOINT_FOLDER), skip_download=True,
                                        quiet=True, timeout=TIMEOUT_S)
    except (gdown.exceptions.DownloadError, requests.RequestException) as exc:
        raise UserError(f"{CHECKPOINT_FOLDER}/: cannot list the release's checkpoint folder {url} ({_one_line(exc)}); "
                        f"retry later, take only --best-umcc / --best-mag, or {MIRROR_HINT}") from exc
    named = {remote.dest: remote for remote in select("checkpoints")}
    files = []
    for entry in entries:
        relative = PurePosixPath(str(entry.path).replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise UserError(f"{url}: refusing folder entry '{entry.path}' (it points outside {CHECKPOINT_FOLDER}/)")
        dest = f"{CHECKPOINT_FOLDER}/{relative}"
        files.append(named.pop(dest, None) or RemoteFile("checkpoints", dest, str(entry.id)))
    return files + list(named.values())


def fetch(remote: RemoteFile, root: Path, base_url: str | None = None,
          progress: ProgressCallback | None = None, log: Callable[[str], None] = print) -> Outcome:
    """Make `root/remote.dest` present and verified (downloading or resuming as needed); unpack zips."""
    dest = root / remote.dest
    status = _check_present(remote, dest, log)
    if status is None:
        url, is_drive = source_url(remote, base_url)
        _download(url, dest, remote, is_drive, progress)
        status = "downloaded"
    unpacked = None
    if remote.extract_to:
        target, marker = root / remote.extract_to, root / remote.extract_to / MARKER
        if marker.is_file() and marker.read_text() != marker_text(dest):
            raise UserError(f"{target} was unpacked from another {remote.name}; move it away and run again")
        if not marker.is_file():
            if target.exists():
                raise UserError(f"{target} exists but was not unpacked by ugn; move it away and run again")
            unpacked = safe_unpack(dest, target)
    return Outcome(remote, dest, status, unpacked)


def _check_present(remote: RemoteFile, dest: Path, log: Callable[[str], None]) -> str | None:
    """'skipped' / 'unverified' when dest can be kept; None when it must be (re)downloaded."""
    if not dest.is_file():
        return None
    sidecar = dest.with_name(dest.name + ".sha256")
    expected = remote.sha256 or (sidecar.read_text().split()[0] if sidecar.is_file() else None)
    if remote.size is not None and dest.stat().st_size != remote.size:
        return _discard(dest, f"size {dest.stat().st_size} != {remote.size}", log)
    problem = content_problem(dest, remote.kind)
    if problem:
        return _discard(dest, f"it holds {problem}, not the file", log)
    if expected is None:
        return "unverified"
    if sha256_file(dest) != expected:
        return _discard(dest, "SHA-256 does not match", log)
    return "skipped"


def _discard(dest: Path, reason: str, log: Callable[[str], None]) -> None:
    """A present file that fails its check is moved aside (never silently kept or destroyed) and re-fetched."""
    aside = dest.with_name(dest.name + ".bad")
    os.replace(dest, aside)
    log(f"{dest}: {reason}; moved to {aside.name}, downloading again")
    return None


def _download(url: str, dest: Path, remote: RemoteFile, is_drive: bool, progress: ProgressCallback | None) -> None:
    import gdown  # lazy: pulls in requests and bs4
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(dest.name + ".download")
    staging.unlink(missing_ok=True)  # a complete but unchecked earlier download: fetch again
    hasher = hashlib.sha256()
    callback = (lambda done, total: progress(remote.name, done, total)) if progress else None
    for attempt in (1, 2):
        try:
            gdown.download(url, output=str(staging), quiet=True, resume=True, use_cookies=is_drive,
                           progress=callback, hasher=hasher, timeout=TIMEOUT_S)
            break
        except gdown.exceptions.FileURLRetrievalError as exc:  # Drive served a page, not the file
            _remove_partials(staging)
            raise _drive_refusal(remote, url, exc) from exc
        except gdown.exceptions.DownloadError as exc:
            if "byte range" in str(exc) and attempt == 1:  # the server cannot resume: start over once
                _remove_partials(staging)
                hasher = hashlib.sha256()
                continue
            raise UserError(f"{remote.dest}: download from {url} interrupted ({_first_line(exc)}); "
                            "the partial file is kept: run the same command again to resume") from exc
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else "?"
            reason = exc.response.reason if exc.response is not None else ""
            raise UserError(f"{remote.dest}: server answered HTTP {code} {reason} for {url}; "
                            f"check the mirror (--url / {BASE_URL_ENV})") from exc
        except requests.RequestException as exc:
            kept = "; the partial file is kept for resuming" if _partials(staging) else ""
            raise UserError(f"{remote.dest}: cannot reach {url} ({type(exc).__name__}); check the network or "
                            f"the mirror (--url / {BASE_URL_ENV}){kept}") from exc
    problem = content_problem(staging, remote.kind)
    if problem:
        page = error_page(page_text(staging)) if markup_kind(read_head(staging)) else None
        staging.unlink()
        what = page[0] if page else problem
        advice = (page[1] if page else f"retry later or {MIRROR_HINT}") if is_drive else \
            f"check the mirror (--url / {BASE_URL_ENV})"
        raise UserError(f"{remote.dest}: {url} did not serve the file but {what}; nothing was kept: {advice}")
    digest = hasher.hexdigest()
    size = staging.stat().st_size
    problem = (f"size {size} != expected {remote.size}" if remote.size is not None and size != remote.size
               else "SHA-256 does not match the published digest" if remote.sha256 and digest != remote.sha256
               else None)
    if problem:
        staging.unlink()
        raise UserError(f"{remote.dest}: downloaded file from {url} failed verification ({problem}); "
                        "it was deleted: check the mirror and run again")
    dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {dest.name}\n")
    os.replace(staging, dest)


def _drive_refusal(remote: RemoteFile, url: str, exc: Exception) -> UserError:
    """One line for a Drive page that is not the file: named from gdown's message or, failing that, the page."""
    page = error_page(str(exc)) or _fetch_error_page(url)
    if page:
        what, advice = page
        return UserError(f"{remote.dest}: {url} did not serve the file but {what}; nothing was kept: {advice}")
    return UserError(f"{remote.dest}: Google Drive did not serve {url} ({_one_line(exc)[:200]}); "
                     f"nothing was kept: retry later or {MIRROR_HINT}")


def _fetch_error_page(url: str) -> tuple[str, str] | None:
    """Fetch once more the page Drive serves instead of the file and name it (None when it cannot be named)."""
    import requests

    try:
        with requests.get(url, timeout=TIMEOUT_S, stream=True) as response:
            body = response.raw.read(HEAD_BYTES, decode_content=True) or b""
            status = "error 404" if response.status_code == 404 else ""
            return error_page(f"{response.url}\n{status}\n{body.decode('utf-8', errors='replace')}")
    except requests.RequestException:
        return None


def _partials(staging: Path) -> list[Path]:
    return sorted(staging.parent.glob(staging.name + "*.part"))


def _remove_partials(staging: Path) -> None:
    for part in _partials(staging):
        part.unlink()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
