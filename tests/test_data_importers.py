"""Importers on tiny fixtures in each native layout, and their errors on malformed inputs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data.importers import IMPORTERS, import_dataset
from unifiedgender.data.manifest import read_manifest
from unifiedgender.errors import UserError

runner = CliRunner()


def jpeg(seed: int) -> bytes:
    """A distinct 8x8 JPEG per seed."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)).save(buffer, "JPEG")
    return buffer.getvalue()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- hagrid-derived ------------------------------------------------------------------------------------

HAGRID_HEADER = "id,user_id,age,gender,race,labels,hand_image_name,face_image_name\n"


def make_hagrid(root: Path, image_root: str = "images/content/aligned_dataset") -> Path:
    rows = {"train": [("s1", "u1", "18-30", "Male"), ("s2", "u2", "31-45", "Female")],
            "val": [("s3", "u3", "18-30", "female")],
            "test": [("s4", "u1", "18-30", "Male")]}  # u1 is in train and test: the published split leaks
    seed = 0
    for split, records in rows.items():
        lines = [HAGRID_HEADER]
        for sample, user, age, gender in records:
            lines.append(f"{sample},{user},{age},{gender},type_2,palm,H_{sample}.jpg,F_{sample}.jpg\n")
            put(root / image_root / "hands" / f"H_{sample}.jpg", jpeg(seed := seed + 1))
            put(root / image_root / "faces" / f"F_{sample}.jpg", jpeg(seed := seed + 1))
        (root / f"{split}.csv").write_text("".join(lines))
    return root


@pytest.mark.parametrize("image_root", ["images/content/aligned_dataset", "images/content/content/aligned_dataset"])
def test_hagrid_derived_pairs_hand_and_face(tmp_path, image_root):
    source = make_hagrid(tmp_path / "release", image_root)
    result, _ = import_dataset("hagrid-derived", source)
    df = result.frame
    assert len(df) == 8 and df["modality"].value_counts().to_dict() == {"hand": 4, "face": 4}
    pairs = df.groupby("sample_id").agg(subjects=("subject_id", "nunique"), modalities=("modality", "nunique"))
    assert pairs["subjects"].eq(1).all() and pairs["modalities"].eq(2).all()
    assert df.set_index("sample_id")["split"].groupby(level=0).first().to_dict() == {
        "s1": "train", "s2": "train", "s3": "val", "s4": "test"}
    assert set(df["gender"]) == {"male", "female"} and set(df["race"]) == {"type_2"}
    assert df.loc[df["modality"] == "hand", "path"].str.contains("/hands/H_").all()
    assert result.counts == {"subjects in more than one published split": 1}


def test_hagrid_derived_accepts_parent_folder_and_skips_absent_images(tmp_path):
    source = make_hagrid(tmp_path / "data/Shared_Derived_HaGRID_unified_Model_For_Sex_Prediction")
    (source / "images/content/aligned_dataset/faces/F_s3.jpg").unlink()
    result, _ = import_dataset("hagrid-derived", tmp_path / "data")
    assert len(result.frame) == 7 and result.counts["skipped: face image absent"] == 1
    assert result.problems["skipped: face image absent"][0].endswith("F_s3.jpg")


def test_hagrid_derived_malformed(tmp_path):
    with pytest.raises(UserError, match="no train.csv/val.csv/test.csv"):
        import_dataset("hagrid-derived", tmp_path)
    source = make_hagrid(tmp_path / "r")
    (source / "val.csv").write_text("id,user,gender\n1,2,Male\n")
    with pytest.raises(UserError, match="val.csv: missing column 'user_id'"):
        import_dataset("hagrid-derived", source)
    (source / "val.csv").write_text(HAGRID_HEADER + "s3,u3,18-30,unknown,type_2,palm,H_s3.jpg,F_s3.jpg\n")
    with pytest.raises(UserError, match="val.csv: row 2: unknown gender 'unknown'"):
        import_dataset("hagrid-derived", source)
    other = tmp_path / "noimages"
    other.mkdir()
    (other / "train.csv").write_text(HAGRID_HEADER)
    with pytest.raises(UserError, match="no aligned_dataset/hands or /faces folder"):
        import_dataset("hagrid-derived", other)


# ---- imagefolder ---------------------------------------------------------------------------------------

def make_flutings(root: Path) -> Path:
    seed = 0
    for split in ("TRAIN", "TEST"):
        for cls, people in (("FEMALE", ("P01", "P02")), ("MALE", ("P03",))):
            for person in people:
                for take in (1, 2):
                    put(root / split / cls / f"{person}_take{take}.png", jpeg(seed := seed + 1))
    put(root / "TRAIN" / "FEMALE" / "notes.txt", b"not an image")
    return root


def test_imagefolder_with_splits_and_subject_pattern(tmp_path):
    source = make_flutings(tmp_path / "virtual_img")
    result, _ = import_dataset("imagefolder", source, modality="fluting_virtual", subject_pattern=r"^(?P<subject>P\d+)_")
    df = result.frame
    assert len(df) == 12 and set(df["split"]) == {"train", "test"}
    assert df.groupby("subject_id")["gender"].first().to_dict() == {"P01": "female", "P02": "female", "P03": "male"}
    assert (df["modality"] == "fluting_virtual").all() and result.warnings == []


def test_imagefolder_without_pattern_warns_one_subject_per_file(tmp_path):
    source = tmp_path / "flat"
    for i, cls in enumerate(["F", "M", "0", "1"]):
        put(source / cls / f"img{i}.jpg", jpeg(i))
    result, _ = import_dataset("imagefolder", source, modality="fluting_tactile")
    df = result.frame
    assert df["subject_id"].nunique() == 4 and "split" not in df.columns
    assert df.set_index("class_folder")["gender"].to_dict() == {"0": "female", "1": "male", "F": "female", "M": "male"}
    assert "every file is its own subject" in result.warnings[0]


def test_imagefolder_class_map_and_unmatched_names(tmp_path):
    source = tmp_path / "root"
    put(source / "HOM" / "A1_x.jpg", jpeg(1))
    put(source / "FEM" / "B2_x.jpg", jpeg(2))
    put(source / "FEM" / "odd.jpg", jpeg(3))
    with pytest.raises(UserError, match="folder 'FEM' is not a known class name; map it with --class-map"):
        import_dataset("imagefolder", source, modality="hand")
    result, _ = import_dataset("imagefolder", source, modality="hand", class_map="FEM=female, hom=male",
                               subject_pattern=r"([A-Z]\d)_")
    assert sorted(result.frame["subject_id"]) == ["A1", "B2"]
    assert result.counts == {"skipped: file name does not match --subject-pattern": 1}


@pytest.mark.parametrize("options, message", [
    ({}, "imagefolder needs --modality"),
    ({"modality": "hand", "subject_pattern": "("}, "not a valid regular expression"),
    ({"modality": "hand", "class_map": "FEM:female"}, "is not FOLDER=male or FOLDER=female"),
])
def test_imagefolder_option_errors(tmp_path, options, message):
    make_flutings(tmp_path / "v")
    with pytest.raises(UserError, match=message):
        import_dataset("imagefolder", tmp_path / "v", **options)


def test_imagefolder_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no sub-folders"):
        import_dataset("imagefolder", tmp_path / "empty", modality="hand")
    put(tmp_path / "split" / "TRAIN" / "WHO" / "a.jpg", jpeg(1))
    with pytest.raises(UserError, match="folder 'WHO' is not a known class"):
        import_dataset("imagefolder", tmp_path / "split", modality="hand")


# ---- socofing ------------------------------------------------------------------------------------------

def test_socofing_fixture_with_malformed_and_altered_names(tmp_path):
    put(tmp_path / "Real" / "7__F_Right_thumb_finger.BMP", jpeg(1))
    put(tmp_path / "Altered" / "7__F_Right_thumb_finger_CR.BMP", jpeg(2))
    put(tmp_path / "Real" / "8__X_Right_thumb_finger.BMP", jpeg(3))
    put(tmp_path / "Real" / "8_M_Right_thumb.png", jpeg(4))
    result, _ = import_dataset("socofing", tmp_path)
    df = result.frame
    assert df[["subject_id", "gender", "hand", "finger"]].drop_duplicates().values.tolist() == [
        ["7", "female", "right", "thumb"]]
    assert sorted(df["alteration"]) == ["cr", "real"] and (df["modality"] == "fingerprint").all()
    key = "skipped: file name not <subject>__<M|F>_<Left|Right>_<finger>_finger"
    assert result.counts == {key: 2} and len(result.problems[key]) == 2


def test_socofing_without_images(tmp_path):
    put(tmp_path / "readme.txt", b"x")
    with pytest.raises(UserError, match="no SOCOFing images found"):
        import_dataset("socofing", tmp_path)


# ---- utkface -------------------------------------------------------------------------------------------

def test_utkface_labels_malformed_names_and_duplicates(tmp_path):
    put(tmp_path / "25_0_2_20170116174525125.jpg.chip.jpg", jpeg(1))
    put(tmp_path / "61_1_4_20170109150557335.jpg", jpeg(2))
    put(tmp_path / "61_1_4_20170109150557336.jpg", jpeg(2))  # byte-identical copy under another name
    put(tmp_path / "39_1_20170116174525125.jpg.chip.jpg", jpeg(3))  # race missing (a real UTKFace quirk)
    put(tmp_path / "3_5_0_20170116174525125.jpg", jpeg(4))  # gender 5
    result, duplicates = import_dataset("utkface", tmp_path)
    df = result.frame.set_index("age")
    assert df.loc[25, "gender"] == "male" and df.loc[25, "race"] == "asian"
    assert set(df.loc[61, "gender"]) == {"female"} and set(df.loc[61, "race"]) == {"others"}
    key = "skipped: malformed name (not <age>_<0|1>_<0-4>_<timestamp>.jpg)"
    assert result.counts == {key: 2} and {Path(p).name[:4] for p in result.problems[key]} == {"39_1", "3_5_"}
    assert duplicates.groups == 1 and len(duplicates.cross_subject) == 1
    assert result.frame["dup_group"].notna().sum() == 2
    assert "no identity labels" in result.warnings[0]


# ---- lfw -----------------------------------------------------------------------------------------------

def test_lfw_fixture_resolves_conflicts_from_identity(tmp_path):
    tree = tmp_path / "lfw-deepfunneled"
    names = ["Ann_A_0001.jpg", "Ann_A_0002.jpg", "Bob_B_0001.jpg", "Bob_B_0002.jpg", "Cy_C_0001.jpg"]
    for i, name in enumerate(names):
        put(tree / name.rsplit("_", 1)[0] / name, jpeg(i))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/female_names.txt").write_bytes(b"Ann_A_0001.jpg\r\nAnn_A_0002.jpg\r\nCy_C_0001.jpg\r\n")
    (tmp_path / "labels/male_names.txt").write_bytes(b"Bob_B_0001.jpg\r\nAnn_A_0002.jpg\r\nCy_C_0001.jpg\r\nGone_0001.jpg\r\n")
    result, _ = import_dataset("lfw", tmp_path)
    df = result.frame.set_index("path")
    genders = {Path(p).name: g for p, g in df["gender"].items()}
    assert genders == {"Ann_A_0001.jpg": "female", "Ann_A_0002.jpg": "female", "Bob_B_0001.jpg": "male",
                       "Bob_B_0002.jpg": "male"}
    assert result.counts["in both gender lists: took the identity's other images' gender"] == 1
    assert result.counts["skipped: in both gender lists, identity has no other label"] == 1
    assert result.counts["in neither gender list: took the identity's other images' gender"] == 1
    assert result.counts["listed names without an image"] == 1


def test_lfw_with_empty_gender_lists_is_refused(tmp_path):
    """No labels means no manifest: not a 0-row file and exit 0 (issue 12, item 9)."""
    put(tmp_path / "lfw-deepfunneled" / "A_B" / "A_B_0001.jpg", jpeg(1))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/female_names.txt").write_text("")
    (tmp_path / "labels/male_names.txt").write_text("\n")
    with pytest.raises(UserError, match=r"no image could be imported as 'lfw' \(skipped: in neither gender list"):
        import_dataset("lfw", tmp_path)
    result = runner.invoke(app, ["data", "import", "lfw", str(tmp_path), "-o", str(tmp_path / "m.csv")])
    assert isinstance(result.exception, UserError) and not (tmp_path / "m.csv").exists()


def test_lfw_missing_label_file(tmp_path):
    put(tmp_path / "lfw-deepfunneled" / "A_B" / "A_B_0001.jpg", jpeg(1))
    with pytest.raises(UserError, match="male_names.txt not found"):
        import_dataset("lfw", tmp_path)


# ---- 11k-hands -----------------------------------------------------------------------------------------

HANDINFO = "id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities\n"


def make_11k(root: Path, extra_row: str = "") -> Path:
    rows = ['"0000007",23,"female","fair",0,1,"palmar left","Hand_0000001.jpg",0',
            '"0000007",23,"female","fair",0,1,"dorsal right","Hand_0000002.jpg",0',
            '"0000009",40,"male","dark",1,0,"dorsal left","Hand_0000003.jpg",0',
            '"0000009",40,"male","dark",1,0,"dorsal left","Hand_0000004.jpg",0']
    (root / "Hands").mkdir(parents=True)
    (root / "HandInfo.csv").write_text(HANDINFO + "\n".join(rows) + "\n" + extra_row)
    for i in (1, 2, 3, 5):
        put(root / "Hands" / f"Hand_000000{i}.jpg", jpeg(i))
    return root


def test_11k_hands_fixture(tmp_path):
    result, _ = import_dataset("11k-hands", make_11k(tmp_path))
    df = result.frame
    assert df["subject_id"].tolist() == ["0000007", "0000007", "0000009"]
    assert df[["aspect", "hand"]].values.tolist() == [["palmar", "left"], ["dorsal", "right"], ["dorsal", "left"]]
    assert df["skin"].tolist() == ["fair", "fair", "dark"] and df["nail_polish"].tolist() == [1, 1, 0]
    assert result.counts == {"skipped: listed in HandInfo.csv, image absent": 1,
                             "skipped: image not listed in HandInfo.csv": 1}


def test_11k_hands_repeated_image_name(tmp_path):
    """A name listed again is one image: the same label keeps one row, the other gender drops it (item 9)."""
    same = '"0000009",40,"male","dark",1,0,"dorsal left","Hand_0000003.jpg",0\n'
    result, _ = import_dataset("11k-hands", make_11k(tmp_path / "same", same))
    assert result.frame["path"].map(lambda p: Path(p).name).tolist().count("Hand_0000003.jpg") == 1
    assert result.counts["skipped: the same file again (symlink or repeated entry)"] == 1
    assert result.counts["skipped: listed in HandInfo.csv, image absent"] == 1  # only Hand_0000004.jpg
    other = '"0000011",30,"female","fair",0,0,"dorsal left","Hand_0000003.jpg",0\n'
    result, _ = import_dataset("11k-hands", make_11k(tmp_path / "other", other))
    assert "Hand_0000003.jpg" not in result.frame["path"].map(lambda p: Path(p).name).tolist()
    assert result.counts["skipped: the same file under two subjects or genders"] == 2
    assert result.counts["skipped: listed in HandInfo.csv, image absent"] == 1


def test_a_symlinked_image_is_imported_once(tmp_path):
    put(tmp_path / "FEMALE" / "a.jpg", jpeg(1))
    put(tmp_path / "MALE" / "b.jpg", jpeg(2))
    (tmp_path / "FEMALE" / "c.jpg").symlink_to(tmp_path / "FEMALE" / "a.jpg")  # the same file as subject "c"
    (tmp_path / "MALE" / "d.jpg").symlink_to(tmp_path / "FEMALE" / "a.jpg")  # and labelled male as subject "d"
    result, _ = import_dataset("imagefolder", tmp_path, modality="hand", subject_pattern=r"^(\w)")
    names = sorted(Path(p).name for p in result.frame["path"])
    assert names == ["b.jpg"], names
    assert result.counts["skipped: the same file under two subjects or genders"] == 3


@pytest.mark.parametrize("row, message", [
    ('"0000010",30,"other","fair",0,0,"dorsal left","Hand_0000005.jpg",0', "row 6: unknown gender 'other'"),
    ('"0000010",30,"male","fair",0,0,"sideways","Hand_0000005.jpg",0', "row 6: aspectOfHand 'sideways'"),
    ('"0000010",old,"male","fair",0,0,"dorsal left","Hand_0000005.jpg",0', "row 6: age 'old'"),
])
def test_11k_hands_bad_rows(tmp_path, row, message):
    with pytest.raises(UserError, match=message):
        import_dataset("11k-hands", make_11k(tmp_path, row))


def test_11k_hands_missing_metadata(tmp_path):
    with pytest.raises(UserError, match="HandInfo.csv not found"):
        import_dataset("11k-hands", tmp_path)
    (tmp_path / "HandInfo.csv").write_text("id,age,gender\n")
    with pytest.raises(UserError, match="missing column 'skinColor'"):
        import_dataset("11k-hands", tmp_path)


# ---- registry and CLI ----------------------------------------------------------------------------------

def test_registry_refuses_unknown_format_option_and_source(tmp_path):
    with pytest.raises(UserError, match="unknown format 'coco'; use one of hagrid-derived"):
        import_dataset("coco", tmp_path)
    with pytest.raises(UserError, match="--modality does not apply to format 'lfw'"):
        import_dataset("lfw", tmp_path, modality="face")
    with pytest.raises(UserError, match="not found"):
        import_dataset("lfw", tmp_path / "absent")


def test_cli_format_list_matches_registry():
    from unifiedgender.cli.data import FORMATS

    assert FORMATS == tuple(IMPORTERS)


def test_cli_import_writes_a_valid_manifest_and_refuses_overwrite(tmp_path):
    source = make_11k(tmp_path / "hands")
    out = tmp_path / "m.csv"
    result = runner.invoke(app, ["data", "import", "11k-hands", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 images of 2 subjects" in result.output and "image absent: 1" in result.output
    df = read_manifest(out)
    assert len(df) == 3 and (df["modality"] == "hand").all()
    assert out.read_text().splitlines()[1].startswith("hands/Hands/Hand_0000001.jpg,0000007,")
    again = runner.invoke(app, ["data", "import", "11k-hands", str(source), "-o", str(out)])
    assert again.exit_code != 0 and "already exists; pass --overwrite" in str(again.exception)
    forced = runner.invoke(app, ["data", "import", "11k-hands", str(source), "-o", str(out), "--overwrite"])
    assert forced.exit_code == 0


def test_console_entry_reports_usage_errors_without_traceback(monkeypatch, capsys, tmp_path):
    from unifiedgender.cli.app import main

    for argv, message in ((["data", "import", "coco", str(tmp_path), "-o", "m.csv"], "'coco' is not one of"),
                          (["data", "import", "lfw", str(tmp_path)], "Missing option '-o'"),
                          (["data", "import", "lfw", str(tmp_path / "absent"), "-o", str(tmp_path / "m.csv")],
                           "error: .*absent: not found")):
        monkeypatch.setattr("sys.argv", ["ugn", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert re.search(message, err), err


def test_cli_imagefolder_options_and_warning(tmp_path):
    source = make_flutings(tmp_path / "virtual_img")
    out = tmp_path / "f.csv"
    result = runner.invoke(app, ["data", "import", "imagefolder", str(source), "-o", str(out),
                                 "--modality", "fluting_virtual"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "every file is its own subject" in result.output
    with_pattern = runner.invoke(app, ["data", "import", "imagefolder", str(source), "-o", str(out), "--overwrite",
                                       "--modality", "fluting_virtual", "--subject-pattern", r"^(P\d+)_"])
    assert with_pattern.exit_code == 0 and "12 images of 3 subjects" in with_pattern.output
    assert "warning:" not in with_pattern.output
    assert set(read_manifest(out)["modality"]) == {"fluting_virtual"}
    wrong = runner.invoke(app, ["data", "import", "lfw", str(source), "-o", str(tmp_path / "x.csv"),
                                "--subject-pattern", "x"])
    assert wrong.exit_code != 0 and "--subject-pattern does not apply to format 'lfw'" in str(wrong.exception)
