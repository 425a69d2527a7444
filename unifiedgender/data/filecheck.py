"""Is a downloaded file what it claims to be? Magic-byte checks, and naming the error pages served instead.

A server (a mirror, or Google Drive) can answer HTTP 200 with an HTML or JSON page: a quota notice, a
virus-scan interstitial, a sign-in page, "file not found". `content_problem` tells such a body from the
expected content (a zip archive, a CSV table with a header row, a PyTorch file); `error_page` says which
page it is and what to do.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

HEAD_BYTES = 64 * 1024
TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled magic number of torch's pre-1.6 format

# (markers in the lower-cased page or its final URL, what the page is, what to do); first match wins, so
# pages that also carry a sign-in link (quota, virus scan, not found) come before the sign-in page itself.
ERROR_PAGES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("too many users have viewed or downloaded", "quota exceeded", "download quota"),
     "Google Drive's 'download quota exceeded' page", "retry in a few hours (Drive resets the quota within a day) "
     "or use --url with a mirror"),
    (("can't scan this file for viruses", "cannot scan this file for viruses", "virus scan warning"),
     "Google Drive's virus-scan warning page", "run the same command again; if it persists use --url with a mirror"),
    (("the file you have requested does not exist", "page not found", "error 404", "file not found"),
     "a 'file not found' page", "the file was removed or moved: use --url with a mirror"),
    (("accounts.google.com", "servicelogin", "sign in - google accounts", "to continue to google drive"),
     "a Google sign-in page (the file is not shared publicly)", "use --url with a mirror"),
)


def error_page(text: str) -> tuple[str, str] | None:
    """(what the page is, what to do) when `text` (a page, its URL, or gdown's message) is a known error page."""
    lowered = text.lower()
    for markers, what, advice in ERROR_PAGES:
        if any(marker in lowered for marker in markers):
            return what, advice
    return None


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES bytes of a file."""
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def markup_kind(head: bytes) -> str | None:
    """'an HTML page' / 'a JSON answer' when the bytes start like one, else None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:256].lower()
    if text.startswith(b"<"):
        return "an HTML page"
    if text.startswith((b"{", b"[")):
        return "a JSON answer"
    return None


def content_problem(path: Path, kind: str | None) -> str | None:
    """None when `path` looks like a `kind` file ('zip', 'csv', 'torch'; None: anything but an error page);
    otherwise what it holds instead, e.g. "an HTML page" or "something that is not a zip archive"."""
    head = read_head(path)
    markup = markup_kind(head)
    if markup:
        return markup
    if not head:
        return "an empty file"
    if kind == "zip" and not (head.startswith((b"PK\x03\x04", b"PK\x05\x06")) and zipfile.is_zipfile(path)):
        return "something that is not a zip archive"
    if kind == "csv":
        if b"\0" in head:
            return "binary data, not a CSV table"
        header = head.decode("utf-8-sig", errors="replace").splitlines()[0]
        if "," not in header:
            return f"a first line {header[:60]!r} that is no CSV header"
    if kind == "torch" and not _is_torch_file(path, head):
        return "something that is not a PyTorch file (neither torch's zip archive nor its legacy format)"
    return None


def _is_torch_file(path: Path, head: bytes) -> bool:
    if head.startswith(b"\x80") and head[2:2 + len(TORCH_LEGACY_MAGIC)] == TORCH_LEGACY_MAGIC:
        return True
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def page_text(path: Path) -> str:
    """The start of a downloaded page, as text, for `error_page`."""
    return read_head(path).decode("utf-8", errors="replace")
