"""The run folder's files outside the checkpoints: may a run go there, creating it, train.log, skipped images,
reading last.pt back. Rank 0 touches the folder; the other ranks get its answer (Runtime.on_main_process)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write
from unifiedgender.runtime import Runtime

LAST, BEST = "last.pt", "best.pt"
# what `ugn train` writes when training starts, before any result: a folder holding only these never trained
START_FILES = frozenset({"config.yaml", "train.log", "skipped_images.csv"})


def check_run_dir(out: Path, overwrite: bool, runtime: Runtime) -> bool:
    """May a new run go to `out`? True when it holds an earlier start that never trained (only the files
    written at the start: config.yaml, train.log, skipped_images.csv): that folder is replaced. A folder with
    last.pt or any other file is refused unless --overwrite. Nothing is written here: `commit_run_dir` makes the
    folder when training starts."""

    def check() -> bool:
        if not out.exists() or overwrite:
            return False
        if not out.is_dir():
            raise UserError(f"{out} is a file; choose another --output folder")
        if (out / LAST).exists():
            raise UserError(f"run folder {out} already holds a run (last.pt); continue it with --resume auto (or "
                            f"--resume {out}), replace it with --overwrite, or choose another --output")
        others = sorted(p.name for p in out.iterdir() if p.name not in START_FILES and not _partial_write(p.name))
        if others:
            raise UserError(f"run folder {out} already exists (it holds {others[0]}); pass --overwrite to replace it, "
                            "or choose another --output")
        return any(out.iterdir())

    return runtime.on_main_process(check)


def commit_run_dir(out: Path, runtime: Runtime) -> None:
    """Rank 0 creates the run folder empty (replacing an earlier one that check_run_dir allowed)."""

    def create() -> None:
        try:
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"cannot create the run folder {out} ({exc}); choose another --output") from exc

    runtime.on_main_process(create)


def _partial_write(name: str) -> bool:
    """A temporary file of an atomic write that a killed process left behind (.NAME.xxxx.part)."""
    return name.startswith(".") and name.endswith(".part")


def load_resume_state(run_dir: Path) -> dict[str, Any]:
    """last.pt of a run folder, through the safe checkpoint loader (tensors and plain data only)."""
    from unifiedgender.checkpoint import read_checkpoint

    path = Path(run_dir) / LAST
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} not found; start the run without --resume")
    return read_checkpoint(path)


def write_skipped(out: Path, rows: list[tuple[str, str]]) -> None:
    """skipped_images.csv: path and reason of every unreadable image (written only when there are some)."""
    import pandas as pd

    with atomic_write(out / "skipped_images.csv", newline="") as handle:
        pd.DataFrame(rows, columns=["path", "status"]).to_csv(handle, index=False)


class RunLog:
    """train.log: lines are kept until the run folder exists (`open`), then appended as they come."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._pending: list[str] = []

    def write(self, line: str | None) -> None:
        if line is None:
            return
        if self.path is None:
            self._pending.append(line)
            return
        with open(self.path, "a") as handle:
            handle.write(line + "\n")

    def open(self, path: Path) -> None:
        """Start writing to `path`, beginning with the lines kept so far."""
        self.path = path
        with open(path, "a") as handle:
            handle.writelines(line + "\n" for line in self._pending)
        self._pending = []
