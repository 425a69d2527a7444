"""Option spellings shared by every command: one output option, one set of --device values, hidden old names.

Only typer and the standard library here (imported by `ugn --help`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

DEVICE_HELP = "auto (the GPU when there is one) | cpu | cuda | cuda:N | mps."


def device_option(default: Optional[str] = "auto", help: str = DEVICE_HELP) -> Any:
    """--device: the same values for every command (checked by unifiedgender.runtime.resolve_device)."""
    return typer.Option(default, "--device", help=help)


def old_output_option(*names: str) -> Any:
    """An old spelling of --output (--out, --outdir), hidden from help; kept for one release."""
    return typer.Option(None, *names, hidden=True)


def pick_output(output: Optional[Path], old: Optional[Path], old_name: str) -> Optional[Path]:
    """The output path given as --output or its old spelling; both at once must agree."""
    if old is None:
        return output
    if output is not None and Path(output) != Path(old):
        from unifiedgender.errors import UserError

        raise UserError(f"{old_name} is the old spelling of --output; pass only --output {output}")
    return old
