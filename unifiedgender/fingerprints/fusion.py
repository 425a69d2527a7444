"""Fingerprint models on ridge features and per-person fusion of scores by finger position (`ugn fuse`).

Inputs: a ridge feature table (`ugn data features`) covering the train, validation and test manifests, and
optionally an image model's predictions on validation and test (a CNN's val_predictions.csv and evaluated
predictions.csv). Models, each written as validation and test predictions tables:

  ridge_image      class-weighted logistic regression on the ridge features plus finger position (one-hot),
                   trained on train; C chosen by validation image ROC-AUC
  ridge_person     one vector per person: the ten finger positions' ridge features side by side (a missing
                   finger: the training mean), logistic regression trained on train people; C by validation
                   person ROC-AUC
  cnn_mean         the image model's mean probability per person (what `ugn evaluate` reports per subject),
                   written so person-level models can be compared with it image by image (paired)
  cnn_stack        the image model's logit at each finger position, logistic regression on validation people
  combined_person  cnn_stack's inputs plus the ridge_person logit, on validation people
  combined_image   image model logit, ridge_image logit and finger position, on validation images

The last three learn on validation predictions only (never on test); their validation scores are out-of-fold
(5 folds by subject) and C is chosen by out-of-fold ROC-AUC, so a threshold chosen on them is honest. Person
models give every image of a person the person's probability: read their subject-level figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from unifiedgender.errors import UserError
from unifiedgender.evaluation.predictions import PRED, PROB, STATUS, pred_labels
from unifiedgender.fileio import atomic_write
from unifiedgender.fingerprints.features import feature_columns

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
FOLDS = 5
STATUS_NO_SCORE = "no score: the fusion inputs hold no value for this image or person"
OUTPUT_COLUMNS = ("path", "subject_id", "modality", "gender", "hand", "finger", "prob_male", "pred", "status")


def finger_position(frame: pd.DataFrame, source: str) -> pd.Series:
    """"left_index" etc. from the hand and finger columns; UserError when they are missing."""
    for column in ("hand", "finger"):
        if column not in frame.columns:
            raise UserError(f"{source}: no '{column}' column; fingerprint fusion needs hand and finger per image "
                            "(`ugn data import socofing` records them)")
    return frame["hand"].astype(str).str.lower() + "_" + frame["finger"].astype(str).str.lower()


@dataclass
class SplitData:
    """One split's images (manifest order) with their ridge features, position and optional image-model logit."""

    frame: pd.DataFrame  # manifest columns + position + label
    features: np.ndarray  # [n, F], NaN where the feature table has no value
    logit: np.ndarray | None = None  # [n] the image model's logit, NaN where it has no score

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy()

    @property
    def subjects(self) -> np.ndarray:
        return self.frame["subject_id"].astype(str).to_numpy()


@dataclass
class FusionResult:
    """Per model: (validation predictions, test predictions); what validation chose; positions used."""

    predictions: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    selection: dict[str, dict[str, float]] = field(default_factory=dict)
    positions: list[str] = field(default_factory=list)


def split_data(manifest: pd.DataFrame, features: pd.DataFrame, scores: pd.DataFrame | None, name: str) -> SplitData:
    """Join a split manifest with the feature table (and scores) by image path."""
    frame = manifest.reset_index(drop=True).copy()
    frame["subject_id"] = frame["subject_id"].astype(str)
    frame["position"] = finger_position(frame, f"{name} manifest")
    frame["label"] = (frame["gender"] == "male").astype(int)
    columns = feature_columns(features)
    ok = features[features["status"] == "ok"].drop_duplicates("path").set_index("path")
    missing = ~frame["path"].isin(features["path"])
    if missing.any():
        raise UserError(f"{name} image '{frame['path'][missing].iloc[0]}' is not in the feature table; compute the table "
                        "on a manifest that holds every split (`ugn data features MANIFEST`)")
    values = ok.reindex(frame["path"])[columns].to_numpy(dtype=np.float64)
    logit = None
    if scores is not None:
        probs = scores.drop_duplicates("path").set_index("path")["prob_male"].reindex(frame["path"])
        probs = pd.to_numeric(probs, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(probs).all():
            raise UserError(f"{name} scores share no image path with the {name} manifest; pass the predictions of that split")
        logit = _logit(probs)
    return SplitData(frame, values, logit)


def fuse_fingerprints(train: SplitData, val: SplitData, test: SplitData, seed: int = 0) -> FusionResult:
    """Fit every model the inputs allow (see the module docstring) and predict validation and test."""
    positions = sorted(set(train.frame["position"]) | set(val.frame["position"]) | set(test.frame["position"]))
    result = FusionResult({}, {}, positions)
    train_means = np.nanmean(train.features, axis=0)
    image_x = [_image_design(d, positions, train_means) for d in (train, val, test)]
    ridge_img = _fit_on_train(image_x, [train.labels, val.labels], val.subjects, person=False)
    result.selection["ridge_image"] = ridge_img.selection
    result.predictions["ridge_image"] = (_image_table(val, ridge_img.val), _image_table(test, ridge_img.test))

    persons = [_person_matrix(d, d.features, positions) for d in (train, val, test)]
    fill = np.nanmean(persons[0][1], axis=0)
    person_x = [_fill(p[1], fill) for p in persons]
    person_y = [_person_labels(d, p[0]) for d, p in zip((train, val, test), persons)]
    ridge_per = _fit_on_train(person_x, person_y[:2], persons[1][0], person=True)
    result.selection["ridge_person"] = ridge_per.selection
    result.predictions["ridge_person"] = (_person_table(val, persons[1][0], ridge_per.val),
                                          _person_table(test, persons[2][0], ridge_per.test))
    if val.logit is None or test.logit is None:
        return result

    result.predictions["cnn_mean"] = tuple(_person_table(d, *_person_mean(d)) for d in (val, test))
    cnn = [_person_matrix(d, d.logit[:, None], positions) for d in (val, test)]
    cnn_fill = np.nanmean(cnn[0][1], axis=0)
    cnn_x = [_fill(c[1], cnn_fill) for c in cnn]
    stack = _fit_on_val(cnn_x, person_y[1], persons[1][0], seed)
    result.selection["cnn_stack"] = stack.selection
    result.predictions["cnn_stack"] = (_person_table(val, cnn[0][0], stack.val), _person_table(test, cnn[1][0], stack.test))

    combined_x = [np.column_stack([cnn_x[0], _logit(ridge_per.val)]), np.column_stack([cnn_x[1], _logit(ridge_per.test)])]
    comb = _fit_on_val(combined_x, person_y[1], persons[1][0], seed)
    result.selection["combined_person"] = comb.selection
    result.predictions["combined_person"] = (_person_table(val, persons[1][0], comb.val), _person_table(test, persons[2][0], comb.test))

    onehot = [_onehot(d.frame["position"], positions) for d in (val, test)]
    img_x = [np.column_stack([np.nan_to_num(d.logit), _logit(p), o]) for d, p, o in zip((val, test), (ridge_img.val, ridge_img.test), onehot)]
    comb_img = _fit_on_val(img_x, val.labels, val.subjects, seed)
    result.selection["combined_image"] = comb_img.selection
    result.predictions["combined_image"] = (_image_table(val, comb_img.val), _image_table(test, comb_img.test))
    return result


@dataclass
class _Fitted:
    val: np.ndarray
    test: np.ndarray
    selection: dict[str, float]


def _model(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=5000))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _fit_on_train(x: Sequence[np.ndarray], y: Sequence[np.ndarray], val_groups: np.ndarray, person: bool) -> _Fitted:
    """Fit on train for each C; keep the C with the best validation ROC-AUC; predict validation and test."""
    best: tuple[float, float, object] | None = None
    for c in C_GRID:
        model = _model(c).fit(_clean(x[0]), y[0])
        auc = _auc(y[1], model.predict_proba(_clean(x[1]))[:, 1])
        if best is None or auc > best[0]:
            best = (auc, c, model)
    auc, c, model = best
    return _Fitted(model.predict_proba(_clean(x[1]))[:, 1], model.predict_proba(_clean(x[2]))[:, 1],
                   {"C": c, "val_roc_auc": auc, "trained_on": "train people" if person else "train images"})


def _fit_on_val(x: Sequence[np.ndarray], y: np.ndarray, groups: np.ndarray, seed: int) -> _Fitted:
    """Choose C by out-of-fold ROC-AUC over subject folds of validation; refit on all of validation for test."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = min(FOLDS, int(min(np.bincount(y, minlength=2))))
    if folds < 2:
        raise UserError("the validation set needs at least 2 people of each sex to stack scores on it")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(x[0], y, groups))
    best: tuple[float, float, np.ndarray] | None = None
    for c in C_GRID:
        oof = np.zeros(len(y))
        for fit_idx, held in splits:
            oof[held] = _model(c).fit(_clean(x[0][fit_idx]), y[fit_idx]).predict_proba(_clean(x[0][held]))[:, 1]
        auc = _auc(y, oof)
        if best is None or auc > best[0]:
            best = (auc, c, oof)
    auc, c, oof = best
    model = _model(c).fit(_clean(x[0]), y)
    return _Fitted(oof, model.predict_proba(_clean(x[1]))[:, 1],
                   {"C": c, "val_roc_auc_out_of_fold": auc, "trained_on": "validation", "folds": folds})


def _clean(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _onehot(values: pd.Series, categories: list[str]) -> np.ndarray:
    return (values.to_numpy()[:, None] == np.asarray(categories)[None, :]).astype(np.float64)


def _image_design(data: SplitData, positions: list[str], fill: np.ndarray) -> np.ndarray:
    """Ridge features (a missing value: the training mean) plus the position one-hot."""
    return np.column_stack([_fill(data.features, fill), _onehot(data.frame["position"], positions)])


def _person_matrix(data: SplitData, values: np.ndarray, positions: list[str]) -> tuple[list[str], np.ndarray]:
    """(people, [n_people, len(positions) * k]): each position's k values side by side (NaN where missing;
    several images at one position are averaged)."""
    k = values.shape[1]
    frame = pd.DataFrame(values, columns=[f"v{i}" for i in range(k)])
    frame["subject_id"], frame["position"] = data.subjects, data.frame["position"].to_numpy()
    wide = frame.groupby(["subject_id", "position"], sort=True).mean().unstack("position")
    wide = wide.reindex(columns=pd.MultiIndex.from_product([[f"v{i}" for i in range(k)], positions]))
    people = list(dict.fromkeys(data.subjects))
    return people, wide.reindex(people).to_numpy(dtype=np.float64)


def _person_mean(data: SplitData) -> tuple[list[str], np.ndarray]:
    probs = pd.Series(1 / (1 + np.exp(-data.logit)), index=data.subjects).groupby(level=0).mean()
    people = list(dict.fromkeys(data.subjects))
    return people, probs.reindex(people).to_numpy()


def _fill(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    out = x.copy()
    rows, cols = np.nonzero(np.isnan(out))
    out[rows, cols] = np.take(np.nan_to_num(fill), cols)
    return out


def _person_labels(data: SplitData, people: list[str]) -> np.ndarray:
    return (data.frame.groupby("subject_id")["label"].mean().reindex(people).to_numpy() >= 0.5).astype(int)


def _image_table(data: SplitData, probs: np.ndarray) -> pd.DataFrame:
    table = data.frame.copy()
    table["prob_male"] = probs
    return _finish(table)


def _person_table(data: SplitData, people: list[str], probs: np.ndarray) -> pd.DataFrame:
    table = data.frame.copy()
    table["prob_male"] = table["subject_id"].map(dict(zip(people, probs)))
    return _finish(table)


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """The predictions-table columns, labelled at 0.5 as the table's constructor labels (no score: no label)."""
    table["modality"] = table.get("modality", "fingerprint")
    table[PRED] = pred_labels(table[PROB], 0.5)
    table[STATUS] = np.where(table[PROB].isna(), STATUS_NO_SCORE, "ok")
    return table[[c for c in OUTPUT_COLUMNS if c in table.columns]]


def write_fusion(result: FusionResult, out: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """OUT/MODEL/{val,test}_predictions.csv and OUT/selection.json; refuses a non-empty OUT unless `overwrite`."""
    import json

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} already holds results; pass --overwrite or choose another --out folder")
    written = []
    for name, (val_table, test_table) in result.predictions.items():
        for split, table in (("val", val_table), ("test", test_table)):
            path = out / name / f"{split}_predictions.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, newline="") as handle:
                table.to_csv(handle, index=False)
            written.append(path)
    with atomic_write(out / "selection.json") as handle:
        json.dump({"positions": result.positions, "models": result.selection}, handle, indent=2)
    written.append(out / "selection.json")
    return written


def fuse_files(features: str | os.PathLike[str], train: str | os.PathLike[str], val: str | os.PathLike[str],
               test: str | os.PathLike[str], val_scores: str | os.PathLike[str] | None = None,
               test_scores: str | os.PathLike[str] | None = None, seed: int = 0) -> FusionResult:
    """fuse_fingerprints from files: a feature table, the split manifests and optional predictions tables."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.evaluation.table import read_predictions
    from unifiedgender.fingerprints.features import read_feature_table

    if (val_scores is None) != (test_scores is None):
        raise UserError("pass both --val-scores and --test-scores (the image model's validation and test predictions), or neither")
    table = read_feature_table(features)
    scores = [read_predictions(p) if p is not None else None for p in (None, val_scores, test_scores)]
    parts = [split_data(read_manifest(path), table, score, name)
             for path, score, name in zip((train, val, test), scores, ("train", "validation", "test"))]
    return fuse_fingerprints(*parts, seed=seed)
