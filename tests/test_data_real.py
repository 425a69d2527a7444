"""Every importer on the real data in ../shared/data: counts must match each folder's SOURCE.txt."""

from __future__ import annotations

import csv

import pytest

from unifiedgender.data.importers import import_dataset
from unifiedgender.data.manifest import read_manifest, write_manifest


def subjects_per_gender(df):
    return df.groupby("gender")["subject_id"].nunique().to_dict()


def test_socofing_real(shared_data):
    result, duplicates = import_dataset("socofing", shared_data / "socofing/Real")
    df = result.frame
    assert len(df) == 4800 and df["subject_id"].nunique() == 480  # 80 % of 600 subjects, 10 fingers each
    assert df.groupby("subject_id").size().eq(10).all()
    assert set(df["finger"]) == {"thumb", "index", "middle", "ring", "little"} and set(df["hand"]) == {"left", "right"}
    with open(shared_data / "socofing/duplicates.csv") as handle:
        published = sorted(sorted(row["subjects"].split()) for row in csv.DictReader(handle))
    assert sorted(subjects for _, subjects, _ in duplicates.cross_subject) == published
    conflicting = sorted(subjects for _, subjects, _ in duplicates.conflicting_gender)
    assert conflicting == [["363", "376"], ["560", "585"]]
    assert df["dup_group"].notna().sum() == duplicates.images == 26


def test_socofing_bmp_originals(shared_data):
    result, _ = import_dataset("socofing", shared_data / "socofing/bmp_originals")
    df = result.frame
    assert sorted(df["subject_id"].unique()) == ["1", "2", "53"]
    assert df["path"].str.endswith(".BMP").all() and len(df) == 6


def test_lfw(shared_data, tmp_path):
    result, duplicates = import_dataset("lfw", shared_data / "lfw_gender")
    df = result.frame
    assert len(df) == 13233 and df["gender"].value_counts().to_dict() == {"male": 10266, "female": 2967}
    assert df["subject_id"].nunique() == 5749 and subjects_per_gender(df) == {"male": 4272, "female": 1477}
    assert result.counts["in both gender lists: female (audited, see SOURCE.txt)"] == 5
    assert result.counts["in neither gender list: took the identity's other images' gender"] == 3
    by_subject = df.groupby("subject_id")["gender"].agg(set)
    assert by_subject["Erika_Reyes"] == {"female"} and by_subject["Yasser_Arafat"] == {"male"}
    assert by_subject.map(len).eq(1).all()
    assert df.groupby("subject_id").size()["George_W_Bush"] == 530
    write_manifest(df, tmp_path / "lfw.csv")
    assert len(read_manifest(tmp_path / "lfw.csv")) == 13233


def test_11k_hands_subset(shared_data):
    result, _ = import_dataset("11k-hands", shared_data / "11k_hands_subset")
    df = result.frame
    assert len(df) == 1108 and df["subject_id"].nunique() == 184
    assert result.counts == {"skipped: listed in HandInfo.csv, image absent": 11076 - 1108}
    assert set(df["aspect"]) == {"dorsal", "palmar"} and set(df["hand"]) == {"left", "right"}
    assert df["skin"].notna().all() and df["age"].between(18, 75).all()
    assert df["subject_id"].str.len().eq(7).all()  # leading zeros kept
    assert df.groupby("subject_id")["gender"].nunique().eq(1).all()


@pytest.mark.parametrize("fmt", ["utkface", "hagrid-derived"])
def test_formats_without_real_copy_refuse_other_data(shared_data, fmt):
    from unifiedgender.errors import UserError

    with pytest.raises(UserError):
        import_dataset(fmt, shared_data / "11k_hands_subset")
