"""Safe unpacking of untrusted zip files: no absolute paths, no `..`, no links or devices, capped size and ratio.

Entries are checked before anything is written, then streamed into a temporary folder beside the target
while the real byte counts are checked again (headers can lie); the folder is renamed into place only when
every entry has unpacked and passed its CRC check.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from unifiedgender.errors import UserError
from unifiedgender.fileio import staging_dir

DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3  # 64 GiB unpacked
DEFAULT_MAX_RATIO = 200  # unpacked / packed, per entry over 1 MiB and over the whole archive
CHUNK = 1024 * 1024
MARKER = ".ugn-unpacked"


def check_entry(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    """The entry's safe relative path; UserError for absolute paths, drive letters, `..`, links and devices."""
    name = info.filename.replace("\\", "/")
    relative = PurePosixPath(name)
    if name.startswith("/") or (relative.parts and ":" in relative.parts[0]):
        raise UserError(f"{archive}: refusing entry '{info.filename}' with an absolute path (unsafe zip)")
    if ".." in relative.parts:
        raise UserError(f"{archive}: refusing entry '{info.filename}' that points outside the target (zip slip)")
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no Unix type
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        kind = "symbolic link" if file_type == stat.S_IFLNK else "special file"
        raise UserError(f"{archive}: refusing entry '{info.filename}': it is a {kind} (unsafe zip)")
    return relative


def safe_unpack(archive: Path, target: Path, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                max_ratio: float = DEFAULT_MAX_RATIO) -> int:
    """Unpack `archive` into `target` (which must not exist yet); returns the number of files written."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_sizes(infos, archive, max_total_bytes, max_ratio)
            paths = [check_entry(info, archive) for info in infos]
            _check_unique(infos, paths, archive)
            with staging_dir(target) as staging:
                files = _unpack_all(zf, infos, paths, staging, archive, max_total_bytes)
                (staging / MARKER).write_text(marker_text(archive))
                os.replace(staging, target)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: corrupt zip ({exc}); delete it and run the download again") from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted entries, unknown compression methods
        raise UserError(f"{archive}: cannot unpack ({exc}); unpack it by hand") from exc
    return files


def _check_unique(infos: list[zipfile.ZipInfo], paths: list[PurePosixPath], archive: Path) -> None:
    """Refuse two entries that unpack to the same file (the later one would silently replace the earlier)."""
    seen: dict[PurePosixPath, str] = {}
    for info, relative in zip(infos, paths):
        if info.is_dir():
            continue
        if relative in seen:
            raise UserError(
                f"{archive}: entries '{seen[relative]}' and '{info.filename}' unpack to the same file; "
                "refusing (the archive is ambiguous: rebuild it or unpack it by hand)"
            )
        seen[relative] = info.filename


def marker_text(archive: Path) -> str:
    """What the marker file in an unpacked folder says: which archive (name and size) it came from."""
    return f"{archive.name} {archive.stat().st_size}\n"


def _check_sizes(infos: list[zipfile.ZipInfo], archive: Path, max_total_bytes: int, max_ratio: float) -> None:
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > max_total_bytes:
        raise UserError(f"{archive}: unpacks to {total:,} bytes, over the {max_total_bytes:,}-byte cap; refusing")
    big = [i for i in infos if i.file_size > CHUNK and i.file_size > max_ratio * max(i.compress_size, 1)]
    if big or (total > CHUNK and total > max_ratio * max(packed, 1)):
        name = big[0].filename if big else "the archive"
        raise UserError(f"{archive}: {name} has a compression ratio over {max_ratio:g}:1 (possible zip bomb); refusing")


def _unpack_all(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], paths: list[PurePosixPath], staging: Path,
                archive: Path, max_total_bytes: int) -> int:
    written_total = files = 0
    for info, relative in zip(infos, paths):
        out = staging.joinpath(*relative.parts)
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(info) as src, open(out, "wb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                written_total += len(chunk)
                if written > info.file_size or written_total > max_total_bytes:
                    raise UserError(f"{archive}: entry '{info.filename}' unpacks to more than it declares; refusing")
                dst.write(chunk)
        files += 1
    return files
