"""`ugn convert`: a published UnifiedGenderNet UMCC/MAG checkpoint as a ugn checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def convert(
    checkpoint: Path = typer.Argument(..., help="A published UMCC or MAG file (e.g. checkpoints/1752668630.pt)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (default: <name>.ugn.pt beside it)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="umcc or mag (default: recognised from the keys)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="timm backbone (default: from the run tag, else tf_efficientnetv2_s.in1k)."),
    gating: Optional[str] = typer.Option(None, "--gating", help="MAG gating, soft or hard (default: from the run tag, else soft)."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Run tag (default: the file name when it is one, else the release's tag for it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Load strictly, read the modality flag from the classifier width, and write a ugn checkpoint with the
    release's preprocessing (Resize 224x224 + ToTensor, no normalisation) and tag."""
    from unifiedgender.checkpoint import convert_published

    result = convert_published(checkpoint, output, arch=arch, backbone=backbone, gating=gating, tag=tag, overwrite=overwrite)
    details = f"flag {'on' if result.flag else 'off'} ({result.flag_from})" if result.arch == "umcc" else f"gating {result.gating}"
    typer.echo(f"wrote {result.output}: {result.arch} on {result.backbone}, {details}, tag {result.tag or 'none'}")
