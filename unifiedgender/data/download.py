"""`ugn download`: fetch release files with gdown, verify them, unpack zips safely.

Every file is downloaded to `<dest>.download` (gdown keeps the partial bytes in `<dest>.downloadXXXXXXXX.part`
and resumes from them with an HTTP Range request), checked against the known size/SHA-256, and only then
renamed to its final name, so a final name always holds a complete, verified file. Its SHA-256 is written
to `<dest>.sha256` so later runs can verify it and skip it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unifiedgender.data.dedup import sha256_file
from unifiedgender.data.safezip import MARKER, marker_text, safe_unpack
from unifiedgender.data.sources import BASE_URL_ENV, RemoteFile
from unifiedgender.errors import UserError

ProgressCallback = Callable[[str, int, "int | None"], None]  # (file name, bytes so far, total or None)


@dataclass
class Outcome:
    """What happened to one file: 'downloaded', 'skipped' (present and verified) or 'unverified' (present, no digest)."""

    remote: RemoteFile
    path: Path
    status: str
    unpacked: int | None = None  # files unpacked from a zip in this run


def resolve_base_url(option: str | None) -> str | None:
    """--url wins over UGN_DOWNLOAD_BASE_URL; None means Google Drive."""
    base = option or os.environ.get(BASE_URL_ENV) or None
    return base.rstrip("/") if base else None


def source_url(remote: RemoteFile, base_url: str | None) -> tuple[str, bool]:
    """(url, is_drive) for a file; UserError when the release publishes no id and no mirror is given."""
    if base_url:
        return f"{base_url}/{remote.dest}", False
    if remote.drive_id:
        return f"https://drive.google.com/uc?id={remote.drive_id}", True
    raise UserError(f"{remote.dest}: the UnifiedGenderNet README publishes no Google Drive id for this file; "
                    f"pass --url BASE or set {BASE_URL_ENV}=BASE (a mirror serving BASE/{remote.dest})")


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
    staging.unlink(missing_ok=True)  # a complete but unverified earlier download: fetch again
    hasher = hashlib.sha256()
    callback = (lambda done, total: progress(remote.name, done, total)) if progress else None
    for attempt in (1, 2):
        try:
            gdown.download(url, output=str(staging), quiet=True, resume=True, use_cookies=is_drive,
                           progress=callback, hasher=hasher, timeout=60)
            break
        except gdown.exceptions.FileURLRetrievalError as exc:
            raise UserError(f"{remote.dest}: Google Drive did not serve {url} ({_first_line(exc)}); try again "
                            f"later or use a mirror with --url / {BASE_URL_ENV}") from exc
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


def _partials(staging: Path) -> list[Path]:
    return sorted(staging.parent.glob(staging.name + "*.part"))


def _remove_partials(staging: Path) -> None:
    for part in _partials(staging):
        part.unlink()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
