"""The core of `ugn predict`: inputs -> streaming predictions -> output files, per-subject table, visuals."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unifiedgender.decision import Threshold
from unifiedgender.errors import UserError
from unifiedgender.evaluation.shift import ShiftCheck, check_shift
from unifiedgender.inference.inputs import collect_inputs
from unifiedgender.inference.writers import output_format

MAX_LISTED_FAILURES = 20


@dataclass
class PredictSummary:
    """What a prediction run did: counts, the first failures, where its files went and how fast it ran."""

    n_images: int = 0
    n_ok: int = 0  # predictions made (with --detect face: faces predicted)
    n_failed: int = 0  # images that could not be read or preprocessed
    n_no_face: int | None = None  # with --detect face: photos in which no face was found
    n_male: int = 0
    n_female: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    output: Path | None = None
    subjects_output: Path | None = None
    subject_rows: list[dict[str, Any]] = field(default_factory=list)
    unmatched: int = 0
    annotated: int = 0
    annotate_dir: Path | None = None
    contact_sheet: Path | None = None
    model: str = ""
    engine: str = ""
    note: str | None = None
    threshold: Threshold | None = None
    shift: ShiftCheck | None = None

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else 0.0


def subjects_path(output: str | os.PathLike[str]) -> Path:
    """predictions.csv -> predictions.subjects.csv (the per-subject table beside the per-image one)."""
    path = Path(output)
    return path.with_name(f"{path.stem}.subjects{path.suffix}")


def run_predict(
    inputs: Sequence[str],
    checkpoint: str | os.PathLike[str],
    *,
    modality: str | None = None,
    recursive: bool = False,
    batch_size: int = 64,
    workers: int | None = None,
    tta: bool = False,
    threshold: float | None = None,
    threshold_policy: str | None = None,
    group_by: str | None = None,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    annotate: str | os.PathLike[str] | None = None,
    contact_sheet: str | os.PathLike[str] | None = None,
    device: str | None = None,
    engine: str = "auto",
    detect: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> PredictSummary:
    """Predict every input image (with `detect="face"`: every face in it); usage problems raise UserError before
    any model is loaded.

    Labels use `threshold` when given, else the model's stored threshold (of `threshold_policy` when given).
    """
    from unifiedgender.inference.annotate import Annotator, ContactSheet
    from unifiedgender.inference.faces import FACE_FIELDS, check_detector, model_framing_note, predict_faces
    from unifiedgender.inference.grouping import SUBJECT_FIELDS, SubjectGrouper
    from unifiedgender.inference.predictor import RECORD_FIELDS, Predictor, check_modality
    from unifiedgender.inference.writers import open_records

    check_modality(modality)
    check_detector(detect)
    grouper = SubjectGrouper(group_by) if group_by else None
    outputs = []
    if output is not None:
        output_format(output)
        outputs.append(Path(output))
        if grouper is not None:
            outputs.append(subjects_path(output))
    for path in outputs:
        if path.is_dir():
            raise UserError(f"{path} is a folder; give a file name with -o, e.g. {path / 'predictions.csv'}")
        if path.exists() and not overwrite:
            raise UserError(f"{path} already exists; pass --overwrite or choose another output path with -o")
    images = collect_inputs(inputs, recursive=recursive, modality=modality)
    sheet = ContactSheet(contact_sheet, overwrite=overwrite) if contact_sheet else None
    predictor = Predictor.from_checkpoint(
        checkpoint, device=device, engine=engine, batch_size=batch_size, workers=workers, tta=tta, threshold=threshold,
        threshold_policy=threshold_policy,
    )
    if grouper is not None:
        grouper.threshold = predictor.threshold
    annotator = Annotator(annotate, overwrite=overwrite) if annotate else None
    fields = RECORD_FIELDS + (FACE_FIELDS if detect else ()) + (("subject",) if grouper else ())
    summary = PredictSummary(n_images=len(images), model=predictor.tag or Path(checkpoint).name, engine=predictor.engine,
                             threshold=predictor.threshold_choice)
    if detect:
        summary.n_no_face, summary.note = 0, model_framing_note(predictor)
    scores: list[float] = []
    if on_start is not None:
        on_start(len(images))
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(open_records(output, fields, overwrite=overwrite)) if output is not None else None
        paths = [i.path for i in images]
        if detect:
            groups = predict_faces(predictor, paths, modality or "face", workers=predictor.workers)
        else:
            groups = ([r] for r in predictor.predict_paths(paths, modality=[i.modality for i in images]))
        for group in groups:
            if annotator is not None:
                annotator.add_faces(group) if detect else annotator.add(group[0])
            for record in group:
                _emit(record, summary, grouper, writer, sheet, on_record)
                if record["status"] == "ok":
                    scores.append(record["prob_male"])
    summary.seconds = time.perf_counter() - started
    summary.shift = check_shift(predictor.decision.scores, scores, predictor.threshold)
    summary.output = Path(output) if output is not None else None
    if grouper is not None:
        summary.subject_rows = grouper.rows()
        summary.unmatched = grouper.unmatched
        if output is not None:
            summary.subjects_output = subjects_path(output)
            with open_records(summary.subjects_output, SUBJECT_FIELDS, overwrite=overwrite) as subject_writer:
                for row in summary.subject_rows:
                    subject_writer.write(row)
    if annotator is not None:
        summary.annotated, summary.annotate_dir = annotator.written, annotator.folder
    if sheet is not None:
        summary.contact_sheet = sheet.save()
    return summary


def _emit(record: dict[str, Any], summary: PredictSummary, grouper: Any, writer: Any, sheet: Any,
          on_record: Callable[[dict[str, Any]], None] | None) -> None:
    """Count one record and hand it to the subject grouper, the output file, the contact sheet and the caller."""
    if grouper is not None:
        record["subject"] = grouper.add(record) or ""
    _count(summary, record)
    if writer is not None:
        writer.write(record)
    if sheet is not None:
        sheet.add(record)
    if on_record is not None:
        on_record(record)


def _count(summary: PredictSummary, record: dict[str, Any]) -> None:
    from unifiedgender.crop.face import STATUS_NO_FACE

    if record["status"] == "ok":
        summary.n_ok += 1
        if record["pred"] == "male":
            summary.n_male += 1
        else:
            summary.n_female += 1
    elif record["status"] == STATUS_NO_FACE and summary.n_no_face is not None:
        summary.n_no_face += 1
    else:
        summary.n_failed += 1
        if len(summary.failures) < MAX_LISTED_FAILURES:
            summary.failures.append((record["path"], record["status"]))
