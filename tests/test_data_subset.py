"""`ugn data subset`: seeded, location-independent caps on images per subject and on subjects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data.manifest import read_manifest, write_manifest
from unifiedgender.errors import UserError

runner = CliRunner()


def make_dataset(root: Path) -> Path:
    """Ten subjects, subject s has s + 1 tiny images; returns the manifest path."""
    rows = []
    for s in range(10):
        for i in range(s + 1):
            path = root / "img" / f"s{s}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4), (s, i, 0)).save(path)
            rows.append({"path": str(path), "subject_id": f"s{s}", "gender": "male" if s % 2 else "female", "modality": "face"})
    return write_manifest(pd.DataFrame(rows), root / "m.csv")


def subset(out: Path, *args: str) -> pd.DataFrame:
    result = runner.invoke(app, ["data", "subset", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return read_manifest(out)


def test_caps_subjects_and_images_per_subject(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path)
    kept = subset(tmp_path / "a.csv", str(manifest), "--per-subject", "2", "--max-subjects", "4", "--seed", "3")
    counts = kept["subject_id"].value_counts()
    assert len(counts) == 4
    assert all(n == min(2, int(s[1:]) + 1) for s, n in counts.items())
    assert list(kept["path"]) == sorted(kept["path"])


def test_same_seed_same_subset_wherever_the_data_lives(tmp_path: Path) -> None:
    first = make_dataset(tmp_path / "here")
    shutil.copytree(tmp_path / "here", tmp_path / "elsewhere" / "deeper")
    moved = tmp_path / "elsewhere" / "deeper" / "m.csv"
    a = subset(tmp_path / "a.csv", str(first), "--per-subject", "1", "--max-subjects", "5", "--seed", "7")
    b = subset(tmp_path / "b.csv", str(moved), "--per-subject", "1", "--max-subjects", "5", "--seed", "7")
    assert [Path(p).name for p in a["path"]] == [Path(p).name for p in b["path"]]
    c = subset(tmp_path / "c.csv", str(first), "--per-subject", "1", "--max-subjects", "5", "--seed", "8")
    assert set(c["subject_id"]) != set(a["subject_id"])  # the seed decides


def test_concatenates_inputs_with_the_union_of_columns(tmp_path: Path) -> None:
    for name, extra in (("hands", {"skin": "fair", "modality": "hand", "subject_id": "1", "gender": "male"}),
                        ("faces", {"modality": "face", "subject_id": "Ann", "gender": "female"})):
        image = tmp_path / f"{name}.png"
        Image.new("RGB", (4, 4)).save(image)
        write_manifest(pd.DataFrame([{"path": str(image), **extra}]), tmp_path / f"{name}.csv")
    kept = subset(tmp_path / "all.csv", str(tmp_path / "hands.csv"), str(tmp_path / "faces.csv"))
    assert list(kept["modality"]) == ["face", "hand"]
    assert kept.set_index("modality").loc["hand", "skin"] == "fair"


def test_refuses_to_overwrite_and_names_a_missing_manifest(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path)
    subset(tmp_path / "a.csv", str(manifest))
    before = (tmp_path / "a.csv").read_bytes()
    again = runner.invoke(app, ["data", "subset", str(manifest), "-o", str(tmp_path / "a.csv"), "--per-subject", "1"])
    assert isinstance(again.exception, UserError) and "a.csv already exists; pass --overwrite" in str(again.exception)
    assert (tmp_path / "a.csv").read_bytes() == before
    missing = runner.invoke(app, ["data", "subset", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "b.csv")])
    assert isinstance(missing.exception, UserError) and "manifest not found" in str(missing.exception)
    assert not (tmp_path / "b.csv").exists()
