"""The manifest contract: validated on read (column, label, file, duplicate), written atomically with relative paths."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from unifiedgender.data.manifest import gender_to_label, read_manifest, write_manifest
from unifiedgender.errors import UserError


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / "imgs" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("L", (4, 4), i).save(path)
        paths.append(str(path))
    return paths


def frame(paths, **overrides):
    df = pd.DataFrame({"path": paths, "subject_id": ["007", "007", "9"], "gender": ["male", "female", "male"],
                       "modality": ["hand", "face", "hand"], "age": [20, None, 31], "extra": ["a", "b", "c"]})
    for column, value in overrides.items():
        df[column] = value
    return df


def test_round_trip_keeps_columns_ids_and_makes_paths_relative(tmp_path, images):
    out = write_manifest(frame(images), tmp_path / "m.csv")
    text = out.read_text().splitlines()
    assert text[0].startswith("path,subject_id,gender,modality,age") and text[0].endswith("extra")
    assert text[1].startswith("imgs/0.png,007,")
    df = read_manifest(out)
    assert df["path"].tolist() == images and df["subject_id"].tolist() == ["007", "007", "9"]
    assert df["age"].isna().tolist() == [False, True, False] and df["extra"].tolist() == ["a", "b", "c"]
    assert gender_to_label(df["gender"]).tolist() == [1, 0, 1]


def test_write_refuses_overwrite(tmp_path, images):
    write_manifest(frame(images), tmp_path / "m.csv")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        write_manifest(frame(images), tmp_path / "m.csv")
    write_manifest(frame(images), tmp_path / "m.csv", overwrite=True)


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns="gender"), "missing column 'gender'"),
    (lambda df: df.assign(gender=["male", "woman", "male"]), "row 3: unknown gender 'woman'; use one of female, male"),
    (lambda df: df.assign(modality=["hand", "iris", "hand"]), "row 3: unknown modality 'iris'"),
    (lambda df: df.assign(subject_id=["1", "", "2"]), "row 3: empty 'subject_id'"),
])
def test_validation_errors_name_the_problem(tmp_path, images, mutate, message):
    path = tmp_path / "m.csv"
    mutate(frame(images)).to_csv(path, index=False)
    with pytest.raises(UserError, match=message):
        read_manifest(path)


def test_missing_file_and_duplicate_path(tmp_path, images):
    path = tmp_path / "m.csv"
    frame([images[0], images[1], str(tmp_path / "gone.png")]).to_csv(path, index=False)
    with pytest.raises(UserError, match="row 4: file not found .*gone.png"):
        read_manifest(path)
    frame([images[0], images[1], images[0]]).to_csv(path, index=False)
    with pytest.raises(UserError, match="row 4: duplicate path"):
        read_manifest(path)


def test_two_spellings_or_a_link_of_one_file_are_one_image(tmp_path, images):
    """Duplicates are found by resolved real path, not by the text of the path (issue 12, item 2)."""
    path = tmp_path / "m.csv"
    dotted = images[0].replace("/imgs/", "/imgs/./")
    frame([images[0], images[1], dotted]).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"row 4: '.*/imgs/\./0.png' is the same file as row 2"):
        read_manifest(path)
    link = tmp_path / "link.png"
    link.symlink_to(images[1])
    frame([images[0], images[1], str(link)]).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"row 4: '.*link.png' is the same file as row 3"):
        read_manifest(path)
    with pytest.raises(UserError, match="is the same file as row 3"):
        write_manifest(frame([images[0], images[1], str(link)]), tmp_path / "out.csv")


def test_absent_and_unreadable_manifest(tmp_path):
    with pytest.raises(UserError, match="manifest not found.*ugn data import"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="not a readable CSV"):
        read_manifest(tmp_path / "empty.csv")
