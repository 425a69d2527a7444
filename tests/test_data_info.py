"""`ugn data info`: images and subjects per gender, modality and demographic group."""

from __future__ import annotations

import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data.info import group_table, manifest_tables
from unifiedgender.data.manifest import write_manifest


def manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "path": [f"/x/{i}.jpg" for i in range(6)],
        "subject_id": ["a", "a", "b", "c", "c", "d"],
        "gender": ["female", "female", "male", "male", "male", "female"],
        "modality": ["hand", "face", "hand", "hand", "hand", "face"],
        "age": [19, 19, 45, 70, 70, None],
        "skin": ["fair", "fair", "dark", None, None, "dark"],
        "dup_group": [None, None, "g1", "g1", None, None],
    })


def test_group_table_counts_images_and_subjects_per_gender():
    table = group_table(manifest(), "modality").set_index("modality")
    assert table.loc["hand"].to_dict() == {"female images": 1, "female subjects": 1, "male images": 3,
                                           "male subjects": 2, "images": 4, "subjects": 3}
    assert table.loc["face", "female subjects"] == 2 and table.loc["face", "male images"] == 0


def test_manifest_tables_bin_ages_and_report_duplicates():
    tables = dict(manifest_tables(manifest()))
    assert list(tables) == ["All images", "By modality", "By age", "By skin", "Byte-identical images"]
    assert tables["By age"]["age"].tolist() == ["18-29", "45-59", "60+", "unknown"]
    assert tables["By skin"].set_index("skin").loc["unknown", "images"] == 2
    assert tables["Byte-identical images"].iloc[0].to_dict() == {"groups": 1, "images": 2, "groups across subjects": 1}
    assert tables["All images"].iloc[0]["subjects"] == 4


def test_info_and_the_fairness_breakdown_use_the_same_age_groups():
    """One home for the reporting age groups: `ugn data info` once binned by decade (<20, 20-29, ...) while the
    evaluation used 0-17, 18-29, ...; a manifest's age table now names the groups its evaluation reports."""
    from unifiedgender.data.ages import REPORT_AGE_EDGES
    from unifiedgender.evaluation.table import group_values

    ages = pd.Series([3, 17, 18, 29.5, 30, 44, 45, 59, 60, 90, None], name="age")
    info = group_table(pd.DataFrame({"age": ages, "gender": "male", "subject_id": range(len(ages))}), "age")
    assert set(info["age"]) == set(group_values(ages, "age", REPORT_AGE_EDGES))
    assert info["age"].tolist() == ["0-17", "18-29", "30-44", "45-59", "60+", "unknown"]
    assert info["images"].tolist() == [2, 2, 2, 2, 2, 1]


def test_cli_info(tmp_path):
    df = manifest().drop(columns="dup_group")
    for i, path in enumerate(df["path"]):
        df.loc[i, "path"] = str(tmp_path / f"{i}.png")
        Image.new("L", (4, 4), i).save(tmp_path / f"{i}.png")
    write_manifest(df, tmp_path / "m.csv")
    result = CliRunner().invoke(app, ["data", "info", str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output
    assert "By modality" in result.output and "By age" in result.output and "45-59" in result.output
    missing = CliRunner().invoke(app, ["data", "info", str(tmp_path / "absent.csv")])
    assert missing.exit_code != 0 and "manifest not found" in str(missing.exception)
