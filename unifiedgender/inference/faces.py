"""`ugn predict --detect face`: every face of a raw photo, detected, aligned to the canonical framing and predicted.

One record per detected face (largest first) with its box in the photo; a photo without a face gives one record
with status "no face found", an unreadable one a record with the reason. The faces are framed with the model's
own `face_crop` margin when it has one (the framing it was trained on), else with its backbone's (crop.face.face_margin).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from unifiedgender.crop.face import STATUS_NO_FACE, Face, face_detector, face_margin
from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.inference.predictor import Predictor

FACE_FIELDS = ("face", "x0", "y0", "x1", "y1", "face_score")
DETECTORS = ("face",)
PREFETCH = 8  # photos detected ahead of the model


def check_detector(detect: str | None) -> None:
    from unifiedgender.errors import UserError

    if detect is not None and detect not in DETECTORS:
        raise UserError(f"--detect {detect!r} is not supported; use {' or '.join(DETECTORS)}")


def model_framing_note(predictor: Predictor) -> str | None:
    """A note when the model was trained without face framing (it then sees a framing it did not learn on)."""
    if predictor.data_config.get("face_crop") is None:
        return ("note: this model was trained without face framing (--face-crop); --detect face gives it aligned "
                "face chips, a framing it did not see in training")
    return None


def _detect(path: str, padding: float, mode: str) -> tuple[list[tuple[Face, Image.Image]], str]:
    """(faces with their aligned chips, status) for one photo."""
    try:
        image = load_image(path, "RGB")
    except ImageReadError as exc:
        return [], str(exc)
    detector = face_detector(padding)
    rgb = np.array(image, dtype=np.uint8)
    faces = detector.detect(rgb)
    if not faces:
        return [], STATUS_NO_FACE
    return [(face, Image.fromarray(detector.align(rgb, face)).convert(mode)) for face in faces], "ok"


def predict_faces(
    predictor: Predictor, paths: Iterable[str | os.PathLike[str]], modality: str | None = "face", workers: int = 1
) -> Iterator[list[dict[str, Any]]]:
    """Per photo, in order: its face records (see the module docstring); photos are detected by `workers` threads."""
    padding = face_margin(predictor.data_config)
    face_detector(padding)  # load once before the threads start
    mode = predictor.mode
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ugn-faces") as pool:
        pending = []
        for path in paths:
            pending.append((os.fspath(path), pool.submit(_detect, os.fspath(path), padding, mode)))
            if len(pending) > PREFETCH:
                yield _records(predictor, modality, *pending.pop(0))
        for item in pending:
            yield _records(predictor, modality, *item)


def _records(predictor: Predictor, modality: str | None, path: str, future: Any) -> list[dict[str, Any]]:
    faces, status = future.result()
    if not faces:
        return [{**predictor.record(path, modality, None, status), **dict.fromkeys(FACE_FIELDS)}]
    probs = predictor.predict_images([chip for _, chip in faces], modality, framed=True)
    records = []
    for index, ((face, _), prob) in enumerate(zip(faces, probs), start=1):
        box = dict(zip(("x0", "y0", "x1", "y1"), face.box))
        records.append({**predictor.record(path, modality, float(prob)), "face": index, **box,
                        "face_score": face.score})
    return records

