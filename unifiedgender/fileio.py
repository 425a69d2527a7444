"""Atomic file writes: a result is either complete under its final name or absent.

Modes follow the usual rules for a shared folder: a new file or folder gets the umask's mode (0644/0755 under
umask 022, 0664/0775 under 002), a replaced file keeps the mode it had. The temporary name beside the target
is `.NAME.TOKEN.PID@HOST.part`; one left behind by a writer that was killed is removed by the next atomic write
of the same name on the same host once its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from unifiedgender.errors import UserError

PART_SUFFIX = ".part"


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _part_name(final: Path) -> Path:
    """A fresh temporary name beside `final`, naming the process that writes it."""
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.{_owner()}{PART_SUFFIX}")


def _writer_alive(part: Path, final_name: str) -> bool:
    """False only for our own naming scheme, on this host, when the writing process no longer exists."""
    middle = part.name[len(final_name) + 2 : -len(PART_SUFFIX)]  # TOKEN.PID@HOST
    token, _, owner = middle.partition(".")
    pid, _, host = owner.partition("@")
    if not token or not pid.isdigit() or host != socket.gethostname():
        return True  # not ours to judge (another host, or another program's file)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: the process exists under another user
        return True
    return True


def remove_stale_parts(final: Path) -> None:
    """Delete temporaries of `final` whose writer was killed (kill -9, power loss) before it could clean up."""
    try:
        candidates = list(final.parent.glob(f".{final.name}.*{PART_SUFFIX}"))
    except OSError:
        return
    for part in candidates:
        if not _writer_alive(part, final.name):
            if part.is_dir() and not part.is_symlink():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)


def _check_target(final: Path, overwrite: bool) -> None:
    if final.is_dir():
        raise UserError(f"{final} is a folder; give a file name as the output path")
    if not overwrite and (final.exists() or final.is_symlink()):
        raise UserError(f"{final} already exists; pass --overwrite or choose another output path")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    final = Path(path)
    _check_target(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)
    tmp_path = _part_name(final)
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the kernel applies the umask
    try:
        yield tmp_path
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(final).st_mode))  # a replaced file keeps its mode
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", overwrite: bool = True, **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces `path` atomically on success."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def staging_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty folder beside `path` (umask mode) to build a result in; removed afterwards unless the
    block moved it into place (with `replace_dir`)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)
    building = _part_name(final)
    building.mkdir(mode=0o777)  # the kernel applies the umask
    try:
        yield building
    finally:
        shutil.rmtree(building, ignore_errors=True)


def replace_dir(new: Path, out: Path) -> None:
    """Rename the folder `new` onto `out`; an existing `out` is moved aside first and removed after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{new.name}")
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
