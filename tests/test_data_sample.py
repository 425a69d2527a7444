"""The bundled sample: real images with a valid manifest, balanced subjects, attribution, reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from unifiedgender.data.manifest import read_manifest
from unifiedgender.data.split import split_manifest
from unifiedgender.sample import sample_dir, sample_manifest_path

REPO = Path(__file__).resolve().parents[1]


def test_sample_manifest_is_valid_small_and_balanced():
    df = read_manifest(sample_manifest_path())  # checks every file exists
    size = sum(p.stat().st_size for p in sample_dir().rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 3_000_000
    subjects = df.groupby(["modality", "gender"])["subject_id"].nunique().to_dict()
    assert subjects == {("face", "female"): 18, ("face", "male"): 18, ("hand", "female"): 12, ("hand", "male"): 12}
    assert df.loc[df["modality"] == "hand", ["age", "skin"]].notna().all().all()
    assert df.loc[df["modality"] == "face"].groupby("subject_id").size().max() <= 2
    attribution = (sample_dir() / "ATTRIBUTION.md").read_text()
    assert "arXiv:1711.04322" in attribution and "Tech. Report 07-49" in attribution


@pytest.mark.parametrize("seed", range(5))
def test_three_way_split_of_sample_has_both_genders_everywhere(seed):
    parts = split_manifest(read_manifest(sample_manifest_path()), (0.7, 0.15, 0.15), seed)
    for part in parts.values():
        for modality in ("hand", "face"):
            assert set(part.loc[part["modality"] == modality, "gender"]) == {"female", "male"}


@pytest.mark.slow
def test_make_sample_reproduces_the_committed_sample(shared_data, tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts/make_sample.py"), "--shared", str(shared_data.parent),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    committed = sorted(p.relative_to(sample_dir()) for p in sample_dir().rglob("*")
                       if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts)
    assert committed == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for relative in committed:
        assert (tmp_path / relative).read_bytes() == (sample_dir() / relative).read_bytes(), relative


def test_sample_hand_subjects_are_whole(shared_data):
    from unifiedgender.data.importers import import_dataset

    full, _ = import_dataset("11k-hands", shared_data / "11k_hands_subset")
    sample = read_manifest(sample_manifest_path())
    hands = sample[sample["modality"] == "hand"]
    in_subset = full.frame[full.frame["subject_id"].isin(hands["subject_id"])].groupby("subject_id").size()
    assert in_subset.to_dict() == hands.groupby("subject_id").size().to_dict()
