"""Every architecture trains through `ugn train` on real images from ../shared/data (small subject subsets)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from test_train_support import TINY
from unifiedgender.cli.app import app
from unifiedgender.data.importers import import_dataset
from unifiedgender.data.split import split_manifest, write_splits

pytestmark = pytest.mark.slow


def _subjects(frame: pd.DataFrame, per_gender: int) -> pd.DataFrame:
    """The first `per_gender` subjects of each gender (sorted ids: deterministic)."""
    keep = []
    for _, group in frame.groupby("gender"):
        keep += sorted(group["subject_id"].unique())[:per_gender]
    return frame[frame["subject_id"].isin(keep)]


@pytest.fixture(scope="module")
def real_splits(shared_data, tmp_path_factory):
    """Subject-level train/val manifests: hands (11K) + faces (LFW), and fingerprints (SOCOFing)."""
    root = tmp_path_factory.mktemp("real")
    hands = _subjects(import_dataset("11k-hands", shared_data / "11k_hands_subset")[0].frame, 6)
    faces = import_dataset("lfw", shared_data / "lfw_gender")[0].frame
    faces = _subjects(faces[faces["subject_id"].str.startswith(("A", "B"))], 8).groupby("subject_id").head(2)
    prints = _subjects(import_dataset("socofing", shared_data / "socofing" / "Real")[0].frame, 6)
    out = {}
    for name, frame in {"hands_faces": pd.concat([hands, faces], ignore_index=True), "fingerprints": prints}.items():
        parts = split_manifest(frame.reset_index(drop=True), (0.7, 0.3), seed=0)
        write_splits(parts, root / name)
        out[name] = (root / name / "train.csv", root / name / "val.csv", parts)
    return out


@pytest.mark.parametrize("arch, tag, data", [
    ("umcc", f"{TINY}_F1_Af_Lb_Z0", "hands_faces"),
    ("mag", f"{TINY}_F0_Af_Lb_Z0_gating=soft", "hands_faces"),
    ("classifier", f"{TINY}_F0_Af_Lw_Z0", "hands_faces"),
    ("resnet50_head", f"{TINY}_F0_An_Lb_Z3", "hands_faces"),
    ("multitask", f"{TINY}_F0_Af_Lb_Z0", "hands_faces"),
    ("simple_cnn", "simple_cnn_F0_An_Lb_Z0", "fingerprints"),
])
def test_architecture_trains_on_real_data(real_splits, tmp_path, arch, tag, data):
    train, val, parts = real_splits[data]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--tag", tag, "--arch", arch, "--train", str(train), "--val", str(val), "--out", str(out),
        "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--pretrained", "none", "--workers", "0",
        "--cache", "memory",
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    predictions = pd.read_csv(out / "val_predictions.csv", dtype={"subject_id": str})
    assert len(predictions) == len(parts["val"]) and set(predictions["status"]) == {"ok"}
    assert predictions["prob_male"].between(0, 1).all()
    assert set(predictions["subject_id"]).isdisjoint(set(parts["train"]["subject_id"]))
    if data == "hands_faces":
        assert set(predictions["modality"]) == {"hand", "face"}
