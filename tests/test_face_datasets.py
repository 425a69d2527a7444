"""Adience and CelebA importers on fixtures in their exact native formats, their errors, and column splits."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from face_dataset_fixtures import (ADIENCE_HEADER, CELEBA_ROWS, make_adience, make_celeba,
                                   write_full_size_celeba)
from unifiedgender.cli.app import app
from unifiedgender.data.ages import BUCKET_LABELS, age_buckets, age_to_bucket
from unifiedgender.data.folds import fold_splits, split_by_column
from unifiedgender.data.importers import import_dataset
from unifiedgender.data.manifest import read_manifest, write_manifest
from unifiedgender.errors import UserError

runner = CliRunner()


# ---- Adience --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["faces", "aligned"])
def test_adience_rows_subjects_ages_and_counts(tmp_path, folder):
    source = make_adience(tmp_path / "adience", folder=folder, absent=1, crlf=folder == "aligned")
    result, _ = import_dataset("adience", source)
    df = result.frame.set_index("path")
    # 15 faces x 2 images = 30 rows: 4 with gender u/blank, 1 image absent -> 25 rows.
    assert len(df) == 25
    assert result.counts == {"skipped: gender u or blank (unknown)": 4, "skipped: image absent": 1,
                             "kept without age (age None)": 2}
    assert result.problems["skipped: gender u or blank (unknown)"] == [
        "fold_0_data.txt:6", "fold_0_data.txt:7", "fold_3_data.txt:6", "fold_3_data.txt:7"]
    assert result.problems["skipped: image absent"][0].endswith(
        f"{folder}/115321157@N03/{'coarse_tilt' if folder == 'faces' else 'landmark'}_aligned_face.15.1029_151abc_o.jpg")
    by_label = df.drop_duplicates("age_label").set_index("age_label")
    assert by_label.loc["(25, 32)", "age"] == 28.5 and by_label.loc["(25, 32)", "age_bucket"] == "25-32"
    assert by_label.loc["(60, 100)", "age_bucket"] == "60-100"
    assert (by_label.loc["35", "age"], by_label.loc["35", "age_bucket"]) == (35.0, "25-32")  # a number: the nearest group
    assert (by_label.loc["(38, 48)", "age"], by_label.loc["(38, 48)", "age_bucket"]) == (43.0, "38-43")  # irregular range
    assert by_label.loc["(8, 23)", "age_bucket"] == "15-20"
    assert math.isnan(by_label.loc["None", "age"]) and by_label.loc["None", "age_bucket"] == ""
    assert set(df["subject_id"]) >= {"30601258@N03/1", "30601258@N03/2"} and df["modality"].eq("face").all()
    assert df.groupby("fold").size().to_dict() == {0: 4, 1: 6, 2: 6, 3: 4, 4: 5}
    assert set(df.loc[df["subject_id"] == "30601258@N03/2", "gender"]) == {"male"}
    assert result.warnings == []


def test_adience_prefers_faces_and_takes_aligned_on_request(tmp_path):
    source = make_adience(tmp_path / "a", folder="faces", absent=0)
    make_adience(tmp_path / "a", folder="aligned", absent=3)
    assert import_dataset("adience", source)[0].frame["path"].str.contains("/faces/").all()
    aligned, _ = import_dataset("adience", source, images="aligned")
    assert aligned.frame["path"].str.contains(r"/aligned/[^/]+/landmark_aligned_face\.", regex=True).all()
    assert aligned.counts["skipped: image absent"] == 3
    with pytest.raises(UserError, match="--images 'crops': Adience has faces or aligned"):
        import_dataset("adience", source, images="crops")


def test_adience_subject_in_two_folds_and_missing_fold_are_reported(tmp_path):
    source = make_adience(tmp_path / "a", absent=0)
    fold1 = (source / "fold_1_data.txt").read_text().splitlines()
    moved = fold1[1].replace("10792106@N03", "30601258@N03").replace("\t4\t", "\t1\t")  # face 1 of fold 0's user
    (source / "fold_1_data.txt").write_text("\n".join([*fold1, moved]) + "\n")
    (source / "faces/30601258@N03" / f"coarse_tilt_aligned_face.1.{moved.split(chr(9))[1]}").write_bytes(b"x" * 7)
    (source / "fold_4_data.txt").unlink()
    result, _ = import_dataset("adience", source)
    assert result.counts["subjects in more than one fold"] == 1
    assert any("30601258@N03/1" in w and "not subject-exclusive" in w for w in result.warnings)
    assert any("fold_4_data.txt" in w for w in result.warnings)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\tage\t", "\tages\t"), r"fold_0_data.txt: missing column 'age' .*Adience fold file"),
    (lambda t: t.replace("(25, 32)", "adult"), r"fold_0_data.txt: line 2: age 'adult' is neither a range like \(25, 32\)"),
    (lambda t: t.replace("(25, 32)", "(32, 25)"), r"line 2: age range '\(32, 25\)' runs backwards"),
    (lambda t: t.replace("\tf\t", "\tx\t", 1), r"line 2: gender 'x' is not m, f or u"),
    (lambda t: t.replace("\t(25, 32)\tf\t0\t414\t1086\t1383\t-115\t30\t17", "", 1), r"line 2: 3 tab-separated fields"),
    (lambda t: t.replace("\t", ","), r"missing column 'user_id'"),
])
def test_adience_wrong_files(tmp_path, edit, message):
    source = make_adience(tmp_path / "a", absent=0)
    path = source / "fold_0_data.txt"
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError, match=message):
        import_dataset("adience", source)


def test_adience_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no fold_0_data.txt"):
        import_dataset("adience", tmp_path / "empty")
    (tmp_path / "empty" / "fold_0_data.txt").write_text(ADIENCE_HEADER + "\n")
    with pytest.raises(UserError, match="no faces or aligned/ folder; unpack the Adience images"):
        import_dataset("adience", tmp_path / "empty")
    source = make_adience(tmp_path / "a", absent=30)
    with pytest.raises(UserError, match="none of the faces listed in the fold files exists"):
        import_dataset("adience", source)


def test_age_groups_match_between_scalar_vector_and_training_loss():
    import torch

    from unifiedgender.data.ages import BUCKET_EDGES

    ages = [0, 2, 3, 3.5, 5, 7, 7.1, 13.5, 22.5, 24, 35, 35.5, 45.5, 56.5, 60, 99, float("nan")]
    vector = age_buckets(ages)
    assert vector[-1] == -1
    assert [age_to_bucket(a) for a in ages[:-1]] == vector[:-1].tolist()
    assert torch.bucketize(torch.tensor(ages[:-1]), torch.tensor(BUCKET_EDGES)).tolist() == vector[:-1].tolist()
    assert [BUCKET_LABELS[b] for b in vector[:4]] == ["0-2", "0-2", "0-2", "4-6"]  # 3 = the middle of 2|4 -> younger


# ---- CelebA ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["flat", "release"])
def test_celeba_txt_with_identities_and_partition(tmp_path, layout):
    source = make_celeba(tmp_path / "celeba", "txt", layout, absent=1)
    result, _ = import_dataset("celeba", source)
    df = result.frame
    assert len(df) == len(CELEBA_ROWS) - 1 and result.counts["skipped: image absent"] == 1
    assert result.problems["skipped: image absent"][0].endswith("img_align_celeba/000009.jpg")
    assert df["subject_id"].tolist()[:4] == ["celeba_1", "celeba_1", "celeba_2", "celeba_2"]
    assert df["gender"].tolist() == ["male" if r[1] == 1 else "female" for r in CELEBA_ROWS[:-1]]
    assert df["young"].tolist() == [int(r[2] == 1) for r in CELEBA_ROWS[:-1]]
    assert df["split"].tolist() == [("train", "val", "test")[r[3]] for r in CELEBA_ROWS[:-1]]
    assert result.counts["subjects in more than one partition"] == 1  # identity 3: train and val
    assert any("celeba_3" in w for w in result.warnings)


def test_celeba_csv_variant_says_subjects_are_unknown_and_offers_the_partition(tmp_path):
    source = make_celeba(tmp_path / "celeba", "csv", "kaggle", absent=0)
    result, _ = import_dataset("celeba", source)
    df = result.frame
    assert len(df) == len(CELEBA_ROWS) and df["subject_id"].is_unique
    assert df["subject_id"].iloc[0] == "celeba_000001" and "/img_align_celeba/img_align_celeba/" in df["path"].iloc[0]
    assert any("subjects are unknown" in w and "--by-column split" in w for w in result.warnings)
    assert df["split"].value_counts().to_dict() == {"train": 5, "val": 2, "test": 2}


def bad_male_value(text: str) -> str:
    """Row 000002.jpg with Male = 2."""
    lines = text.splitlines()
    cells = lines[3].split()
    cells[1 + 2] = "2"  # image name, then 5_o_Clock_Shadow, Arched_Eyebrows, Male
    lines[3] = " ".join(cells)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("variant, file, edit, message", [
    ("txt", "list_attr_celeba.txt", lambda t: t.replace("Male", "Mal"), "no 'Male' attribute"),
    ("txt", "list_attr_celeba.txt", lambda t: bad_male_value(t), r"image 000002.jpg: Male = '2', expected 1 or -1"),
    ("txt", "list_attr_celeba.txt", lambda t: t.replace("9\n", "10\n", 1), "line 1 says 10 images but 9 rows follow"),
    ("txt", "list_attr_celeba.txt", lambda t: "\n".join(t.splitlines()[1:]), "line 1 must be the image count"),
    ("txt", "list_eval_partition.txt", lambda t: t.replace("000001.jpg 0", "000001.jpg 5"), "partition '5' is not 0, 1 or 2"),
    ("txt", "identity_CelebA.txt", lambda t: t.replace("000003.jpg 2", "000003.jpg two"), "identity 'two' is not a whole number"),
    ("csv", "list_attr_celeba.csv", lambda t: t.replace("image_id", "image"), "missing column 'image_id'"),
    ("csv", "list_eval_partition.csv", lambda t: t.replace("partition", "part"), "missing column 'partition'"),
])
def test_celeba_wrong_files(tmp_path, variant, file, edit, message):
    source = make_celeba(tmp_path / "c", variant, "flat", absent=0)
    (source / file).write_text(edit((source / file).read_text()))
    with pytest.raises(UserError, match=message):
        import_dataset("celeba", source)


def test_celeba_layout_errors(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(UserError, match="neither list_attr_celeba.txt nor list_attr_celeba.csv"):
        import_dataset("celeba", tmp_path / "none")
    source = make_celeba(tmp_path / "c", "txt", "flat", absent=0)
    (source / "img_align_celeba").rename(source / "images")
    with pytest.raises(UserError, match="no image folder .*unzip img_align_celeba.zip"):
        import_dataset("celeba", source)


def test_celeba_release_annotations_import_with_identities_crossing_partitions(tmp_path):
    """The release's annotation layout at 4,000 rows (every image present): identities 161 and 181 straddle
    the scaled partition boundaries. Import speed at the full 202,599 rows: benchmarks/celeba_import.py."""
    source = write_full_size_celeba(tmp_path, size=4000)
    result, duplicates = import_dataset("celeba", source)
    assert len(result.frame) == 4000 and duplicates.groups == 0
    assert result.counts["subjects in more than one partition"] == 2


# ---- splits by column -------------------------------------------------------------------------------------

def adience_manifest(tmp_path: Path) -> pd.DataFrame:
    result, _ = import_dataset("adience", make_adience(tmp_path / "adience", absent=0))
    return result.frame


def test_test_fold_keeps_the_fold_whole_and_splits_the_rest_by_subject(tmp_path):
    df = adience_manifest(tmp_path)
    split = split_by_column(df, "fold", "2", ratios=(0.5, 0.5), seed=3)
    parts = split.parts
    assert set(parts) == {"train", "val", "test"} and not split.removed
    assert parts["test"]["fold"].eq(2).all() and len(parts["test"]) == int((df["fold"] == 2).sum())
    assert not (set(parts["train"]["fold"]) | set(parts["val"]["fold"])) & {2}
    sides = [set(p["subject_id"]) for p in parts.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(p) for p in parts.values()) == len(df)
    again = split_by_column(df.sample(frac=1, random_state=1), "fold", "2", ratios=(0.5, 0.5), seed=3)
    assert sorted(again.parts["val"]["path"]) == sorted(parts["val"]["path"])


def test_subject_on_two_sides_is_removed_from_the_earlier_side(tmp_path):
    df = adience_manifest(tmp_path)
    leaked = df.index[df["subject_id"] == "30601258@N03/1"][0]
    df.loc[leaked, "fold"] = 4  # one image of a fold-0 subject listed in fold 4
    split = split_by_column(df, "fold", "4", ratios=(0.5, 0.5))
    assert split.removed_subjects == 1 and sum(split.removed.values()) == 1
    assert "30601258@N03/1" in set(split.parts["test"]["subject_id"])
    assert "30601258@N03/1" not in set(split.parts["train"]["subject_id"]) | set(split.parts["val"]["subject_id"])


def test_fold_splits_give_every_fold_once_as_test(tmp_path):
    df = adience_manifest(tmp_path)
    folds = fold_splits(df, "fold", ratios=(0.5, 0.5))
    assert list(folds) == ["0", "1", "2", "3", "4"]
    tested = pd.concat([s.parts["test"] for s in folds.values()])
    assert sorted(tested["path"]) == sorted(df["path"])


def test_partition_column_gives_the_sides_and_keeps_subjects_apart(tmp_path):
    result, _ = import_dataset("celeba", make_celeba(tmp_path / "c", "txt", "flat", absent=0))
    split = split_by_column(result.frame, "split")
    assert {k: len(v) for k, v in split.parts.items()} == {"train": 4, "val": 2, "test": 2}
    assert split.removed == {"train": 1} and split.removed_subjects == 1  # identity 3 stays on val only
    assert split.parts["val"]["published_split"].eq("val").all()


@pytest.mark.parametrize("column, test_value, message", [
    ("folds", "1", "the manifest has no column 'folds'; it has path, subject_id"),
    ("fold", "7", "column 'fold' has no value '7'; it has 0, 1, 2, 3, 4"),
    ("fold", None, "column 'fold': value '0' is not a split name"),
    ("gender", None, "value 'female' is not a split name"),
])
def test_split_by_column_errors(tmp_path, column, test_value, message):
    with pytest.raises(UserError, match=message):
        split_by_column(adience_manifest(tmp_path), column, test_value)


def test_cli_import_and_fold_split(tmp_path):
    source = make_adience(tmp_path / "adience", absent=1)
    manifest = tmp_path / "adience.csv"
    out = runner.invoke(app, ["data", "import", "adience", str(source), "-o", str(manifest)])
    assert out.exit_code == 0, out.output
    assert "skipped: gender u or blank (unknown): 4" in out.output and "skipped: image absent: 1" in out.output
    assert "kept without age (age None): 2" in out.output
    assert read_manifest(manifest)["fold"].nunique() == 5
    out = runner.invoke(app, ["data", "split", str(manifest), "--by-column", "fold", "--folds", "--ratios", "0.5,0.5",
                              "-o", str(tmp_path / "folds")])
    assert out.exit_code == 0, out.output
    assert sorted(p.parent.name for p in (tmp_path / "folds").glob("fold_*/test.csv")) == [f"fold_{k}" for k in range(5)]
    again = runner.invoke(app, ["data", "split", str(manifest), "--by-column", "fold", "--folds", "-o", str(tmp_path / "folds")])
    assert again.exit_code != 0 and "already exists; pass --overwrite" in str(again.exception)
    one = runner.invoke(app, ["data", "split", str(manifest), "--by-column", "fold", "--test-fold", "3", "-o", str(tmp_path / "f3")])
    assert one.exit_code == 0, one.output
    assert read_manifest(tmp_path / "f3" / "test.csv")["fold"].eq(3).all()


@pytest.mark.parametrize("args, message", [
    (["--test-fold", "1"], "--test-fold and --folds need --by-column"),
    (["--by-column", "fold", "--test-fold", "1", "--folds"], "pass one"),
    (["--by-column", "fold", "--test-fold", "1", "--ratios", "0.6,0.2,0.2"], "the test side is the fold"),
    (["--by-column", "split", "--ratios", "0.5,0.5"], "--ratios does not apply to --by-column split alone"),
])
def test_cli_split_option_errors(tmp_path, args, message):
    manifest = tmp_path / "m.csv"
    write_manifest(adience_manifest(tmp_path), manifest)
    out = runner.invoke(app, ["data", "split", str(manifest), *args, "-o", str(tmp_path / "o")])
    assert out.exit_code != 0 and message in str(out.exception), out.output
