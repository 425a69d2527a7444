"""Crop a folder (recursive) or a manifest with a framer (SAM2 or the face detector): crops, boxes.csv, masks,
previews, manifest.

Outputs under OUT: each crop at the image's path relative to the input folder (or to the manifest's folder),
``masks/<relative path>.png`` and ``previews/<relative path>.png`` when asked, ``boxes.csv`` (one row per input:
path, x0, y0, x1, y1, score, points, status) and, for a manifest input, a manifest of the crops with the same
name and all columns kept. Crops already written are skipped (their boxes.csv row is carried over) unless
``overwrite``. One unreadable image is recorded in boxes.csv and never stops the run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from unifiedgender.crop.framers import STATUS_OK, Framer
from unifiedgender.crop.postprocess import Box
from unifiedgender.crop.prompts import DEFAULT_POINT_SPACING, prompt_points
from unifiedgender.data.images import IMAGE_EXTENSIONS, ImageReadError, is_image_name, load_image
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_path, atomic_write

if TYPE_CHECKING:
    import pandas as pd

BOXES_FILE = "boxes.csv"
BOXES_COLUMNS = ("path", "x0", "y0", "x1", "y1", "score", "points", "status")
MASKS_DIR = "masks"
PREVIEWS_DIR = "previews"
STATUS_SKIPPED = "skipped: crop already written"
FAILED_PREFIX = "failed: "


@dataclass(frozen=True)
class CropOptions:
    """How each image is prompted, post-processed and which extra outputs are written."""

    n_points: int = 1
    point_spacing: float = DEFAULT_POINT_SPACING
    dilate_radius: int = 5
    save_masks: bool = False
    preview: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class CropItem:
    """One input image and its path relative to the input root (POSIX style, as written to boxes.csv)."""

    source: Path
    relative: str


@dataclass
class CropResult:
    """One boxes.csv row."""

    path: str
    box: Box | None = None
    score: float | None = None
    points: int | None = None
    status: str = STATUS_OK
    skipped: bool = False  # crop already written by an earlier run

    @property
    def failed(self) -> bool:
        return self.status.startswith(FAILED_PREFIX)

    def row(self) -> dict[str, Any]:
        box = self.box or Box(*([""] * 4))
        score = "" if self.score is None else f"{self.score:.4f}"
        points = "" if self.points is None else self.points
        return dict(zip(BOXES_COLUMNS, (self.path, *box, score, points, self.status)))


@dataclass
class CropSummary:
    """What a run did; `failed` lists the results whose image could not be read or written."""

    results: list[CropResult]
    boxes_csv: Path
    manifest: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[CropResult]:
        return [r for r in self.results if r.failed]


def folder_items(folder: Path) -> list[CropItem]:
    """Every image below `folder` (recursive, sorted), hidden files and folders excluded."""
    items = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and is_image_name(path.name) and not any(p.startswith(".") for p in relative.parts):
            items.append(CropItem(path, relative.as_posix()))
    return items


def manifest_items(manifest: pd.DataFrame, manifest_path: Path) -> tuple[list[CropItem], Path]:
    """Items for a manifest's rows, relative to the manifest's folder (or the images' common folder if outside it)."""
    sources = [Path(p).resolve() for p in manifest["path"]]
    root = manifest_path.resolve().parent
    if not all(root in s.parents for s in sources):
        root = Path(os.path.commonpath([s.parent for s in sources])) if sources else root
    return [CropItem(s, s.relative_to(root).as_posix()) for s in sources], root


def mask_path(out_dir: Path, relative: str) -> Path:
    return out_dir / MASKS_DIR / f"{relative}.png"


def preview_path(out_dir: Path, relative: str) -> Path:
    return out_dir / PREVIEWS_DIR / f"{relative}.png"


def check_outputs(items: list[CropItem], root: Path, out_dir: Path, options: CropOptions, recursive_input: bool) -> None:
    """Refuse output folders that would overwrite inputs, be rescanned as input, or mix crops with masks/previews."""
    out = out_dir.resolve()
    if out == root or (recursive_input and root in out.parents):
        raise UserError(f"output folder {out_dir} is or lies inside the input {root}; choose an output folder outside it")
    sources = {i.source for i in items}
    clash = next((i for i in items if (out / i.relative) in sources), None)
    if clash is not None:
        raise UserError(f"crop of {clash.source} would overwrite the input {out / clash.relative}; choose another output folder")
    reserved = {name for name, wanted in ((MASKS_DIR, options.save_masks), (PREVIEWS_DIR, options.preview)) if wanted}
    clash = next((i for i in items if PurePosixPath(i.relative).parts[0] in reserved), None)
    if clash is not None:
        raise UserError(
            f"input {clash.relative} would share a folder with the {PurePosixPath(clash.relative).parts[0]}/ outputs; "
            "rename that input folder or drop --save-masks/--preview"
        )


def save_image(image: Image.Image, path: Path) -> None:
    """Save atomically in the format the extension names (JPEG at quality 95)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OSError(f"no image format for extension {path.suffix!r}")
    extra = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **extra)


def crop_one(framer: Framer, item: CropItem, out_dir: Path, options: CropOptions) -> CropResult:
    """Frame and write one crop (plus mask and preview when asked); never raises for bad images."""
    try:
        image = load_image(item.source, "RGB")
    except ImageReadError as exc:
        return CropResult(item.relative, status=f"{FAILED_PREFIX}unreadable image: {exc}")
    rgb = np.array(image, dtype=np.uint8)  # writable: torch warns on read-only arrays
    framing = framer.frame(rgb, options.preview)
    crop = framing.crop
    gray = bool((crop[..., 0] == crop[..., 1]).all() and (crop[..., 1] == crop[..., 2]).all())
    result = CropResult(item.relative, framing.box, framing.score, framing.points, framing.status)
    try:  # the crop goes last: its presence marks the image as done for a resumed run
        if options.save_masks and framing.mask is not None:
            save_image(Image.fromarray(framing.mask * 255), mask_path(out_dir, item.relative))
        if framing.preview is not None:
            save_image(framing.preview, preview_path(out_dir, item.relative))
        save_image(Image.fromarray(np.ascontiguousarray(crop[..., 0] if gray else crop)), out_dir / item.relative)
    except (OSError, ValueError) as exc:
        result.status = f"{FAILED_PREFIX}cannot write output: {exc}"
    return result


def read_boxes(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an earlier boxes.csv by path (empty when there is none)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle) if row.get("path")}


def write_boxes(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(path, newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=BOXES_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _carried_result(relative: str, previous: dict[str, str] | None) -> CropResult:
    """The result of an earlier run for a crop that is skipped now."""
    unknown = CropResult(relative, status=STATUS_SKIPPED, skipped=True)
    if previous is None or previous.get("status", "").startswith(FAILED_PREFIX):
        return unknown
    try:
        box = Box(*(int(previous[k]) for k in ("x0", "y0", "x1", "y1")))
        score = float(previous["score"]) if previous.get("score") else None
        points = int(previous["points"]) if previous.get("points") else None
    except (KeyError, ValueError, TypeError):
        return unknown
    return CropResult(relative, box, score, points, previous.get("status") or STATUS_OK, skipped=True)


def crop_items(
    framer: Framer,
    items: list[CropItem],
    out_dir: Path,
    options: CropOptions,
    on_result: Callable[[CropResult], None] | None = None,
) -> list[CropResult]:
    """Crop every item in order, skipping written crops unless overwrite; boxes.csv is written even if interrupted.

    `on_result(result)` is called after each item (for progress display).
    """
    boxes_csv = out_dir / BOXES_FILE
    previous = read_boxes(boxes_csv)
    rows = {i.relative: previous[i.relative] for i in items if i.relative in previous}
    results = []
    try:
        for item in items:
            if not options.overwrite and (out_dir / item.relative).is_file():
                result = _carried_result(item.relative, previous.get(item.relative))
            else:
                result = crop_one(framer, item, out_dir, options)
            rows[item.relative] = result.row()
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        write_boxes(boxes_csv, [rows[i.relative] for i in items if i.relative in rows])
    return results


def resolve_input(input_path: Path) -> tuple[list[CropItem], Path, pd.DataFrame | None]:
    """Items, their root folder and (for a manifest input) the manifest frame."""
    if input_path.is_dir():
        items = folder_items(input_path.resolve())
        if not items:
            raise UserError(f"no images found under {input_path} (looked for {' '.join(IMAGE_EXTENSIONS)}); check the folder")
        return items, input_path.resolve(), None
    if input_path.is_file() and input_path.suffix.lower() == ".csv":
        from unifiedgender.data.manifest import read_manifest

        manifest = read_manifest(input_path, check_files=False)  # a missing file is one failed row, not a stop
        items, root = manifest_items(manifest, input_path)
        return items, root, manifest
    raise UserError(f"input not found or not a folder/manifest: {input_path}; pass a folder of images or a manifest .csv")


def write_crop_manifest(manifest: pd.DataFrame, items: list[CropItem], results: list[CropResult], out_dir: Path, name: str) -> Path:
    """The input manifest with each path pointing at its crop; rows whose image failed are left out."""
    from unifiedgender.data.manifest import write_manifest

    keep = [not r.failed and (out_dir / r.path).is_file() for r in results]
    cropped = manifest.loc[keep].copy()
    cropped["path"] = [str((out_dir / i.relative).resolve()) for i, k in zip(items, keep) if k]
    return write_manifest(cropped.reset_index(drop=True), out_dir / name, overwrite=True)


@dataclass
class CropJob:
    """A validated crop run: the inputs, their root folder, the output folder and (for a manifest) its frame."""

    items: list[CropItem]
    root: Path
    out_dir: Path
    options: CropOptions
    manifest: pd.DataFrame | None = None
    manifest_name: str | None = None


def prepare_crop(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], options: CropOptions) -> CropJob:
    """Find the inputs and check the output folder, before any model is loaded."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    prompt_points(100, 100, options.n_points, options.point_spacing)  # validates the prompt options
    if options.dilate_radius < 0:
        raise UserError(f"--dilate {options.dilate_radius} is negative; use a radius >= 0 pixels")
    items, root, manifest = resolve_input(input_path)
    check_outputs(items, root, out_dir, options, recursive_input=manifest is None)
    if manifest is not None and input_path.name == BOXES_FILE:
        raise UserError(f"manifest name {BOXES_FILE} clashes with the boxes table; rename the manifest")
    return CropJob(items, root, out_dir, options, manifest, input_path.name if manifest is not None else None)


def run_crop(
    framer: Framer,
    job: CropJob,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[CropResult], None] | None = None,
) -> CropSummary:
    """Crop a prepared job; see the module docstring for the outputs."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    if on_start is not None:
        on_start(len(job.items))
    results = crop_items(framer, job.items, job.out_dir, job.options, on_result)
    summary = CropSummary(results, job.out_dir / BOXES_FILE)
    if job.manifest is not None:
        summary.manifest = write_crop_manifest(job.manifest, job.items, results, job.out_dir, job.manifest_name)
    for result in results:
        key = "skipped" if result.skipped else "failed" if result.failed else result.status
        summary.counts[key] = summary.counts.get(key, 0) + 1
    return summary
