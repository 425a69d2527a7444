"""`ugn predict` end to end: inputs, output formats, overwrite rules, grouping, visuals, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn, write_images  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def flag_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "flag.pt", flag=True)


@pytest.fixture()
def folder(tmp_path):
    """Subjects 01 and 02 with two images each at the top, one nested image, and a non-image file."""
    root = tmp_path / "photos"
    for i, path in enumerate(write_images(root, 4)):
        path.rename(root / f"{1 + i // 2:02d}__finger{i % 2}.jpg")
    write_images(root / "nested", 1)[0].rename(root / "nested" / "03__finger0.jpg")
    (root / "readme.md").write_text("not an image, skipped when scanning a folder")
    return root


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_folder_to_csv_with_exit_0(ckpt, folder, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code, text = run_ugn(["predict", folder, "--checkpoint", ckpt, "--modality", "hand", "-o", out], capsys)
    assert code == 0, text
    rows = read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["01__finger0.jpg", "01__finger1.jpg", "02__finger0.jpg", "02__finger1.jpg"]
    assert list(rows[0]) == ["path", "modality", "prob_male", "prob_female", "pred", "confidence", "status"]
    assert {r["modality"] for r in rows} == {"hand"} and {r["status"] for r in rows} == {"ok"}
    assert "images" in text and "predicted" in text and str(out) in text
    assert not list(tmp_path.glob(".pred.csv.*")), "no temporary file left behind"


def test_recursive_json_and_jsonl_agree(ckpt, folder, tmp_path, capsys):
    code, text = run_ugn(["predict", folder, "-c", ckpt, "--recursive", "-o", tmp_path / "p.json"], capsys)
    assert code == 0, text
    code, text = run_ugn(["predict", folder, "-c", ckpt, "-r", "-o", tmp_path / "p.jsonl", "-b", "2"], capsys)
    assert code == 0, text
    as_json = json.loads((tmp_path / "p.json").read_text())
    as_lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(as_json) == 5 and any("nested" in r["path"] for r in as_json)
    assert [r["path"] for r in as_json] == [r["path"] for r in as_lines]
    for a, b in zip(as_json, as_lines):
        assert a["prob_male"] == pytest.approx(b["prob_male"], abs=1e-5)


def test_glob_and_explicit_files_without_output_print_lines(ckpt, folder, capsys):
    code, text = run_ugn(["predict", str(folder / "01__*.jpg"), folder / "nested" / "03__finger0.jpg", "-c", ckpt], capsys)
    assert code == 0, text
    lines = [line for line in text.splitlines() if line.startswith(("male\t", "female\t"))]
    assert len(lines) == 3 and lines[-1].endswith("03__finger0.jpg")


def test_manifest_input_uses_its_modality_and_relative_paths(flag_ckpt, folder, tmp_path, capsys):
    manifest = folder / "manifest.csv"
    pd.DataFrame({
        "path": ["01__finger0.jpg", "nested/03__finger0.jpg", "gone.jpg"], "subject_id": ["1", "3", "4"],
        "gender": ["male", "female", "male"], "modality": ["hand", "face", "face"],
    }).to_csv(manifest, index=False)
    out = tmp_path / "m.csv"
    code, text = run_ugn(["predict", manifest, "-c", flag_ckpt, "-o", out], capsys)
    assert code == 1, text  # gone.jpg is missing: reported, not fatal
    rows = read_csv(out)
    assert [r["modality"] for r in rows] == ["hand", "face", "face"]
    assert [r["status"] for r in rows][:2] == ["ok", "ok"] and rows[2]["status"].startswith("cannot open")


def test_refuses_to_overwrite_then_overwrites(ckpt, folder, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    out.write_text("precious\n")
    code, text = run_ugn(["predict", folder, "-c", ckpt, "-o", out], capsys)
    assert code == 2 and "already exists; pass --overwrite" in text
    assert out.read_text() == "precious\n"
    code, text = run_ugn(["predict", folder, "-c", ckpt, "-o", out, "--overwrite"], capsys)
    assert code == 0, text
    assert len(read_csv(out)) == 4


def test_group_by_gives_one_prediction_per_subject(ckpt, folder, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code, text = run_ugn(["predict", folder, "-r", "-c", ckpt, "--group-by", r"^(?P<subject>\d+)__", "-o", out], capsys)
    assert code == 0, text
    images = read_csv(out)
    subjects = read_csv(tmp_path / "pred.subjects.csv")
    assert [s["subject"] for s in subjects] == ["01", "02", "03"]
    assert [int(s["n_images"]) for s in subjects] == [2, 2, 1]
    for subject in subjects:
        probs = [float(r["prob_male"]) for r in images if r["subject"] == subject["subject"]]
        assert float(subject["prob_male"]) == pytest.approx(sum(probs) / len(probs), abs=2e-6)
        assert subject["pred"] == ("male" if float(subject["prob_male"]) >= 0.5 else "female")


def test_group_by_first_unnamed_group_printed_without_output(ckpt, folder, capsys):
    code, text = run_ugn(["predict", folder, "-c", ckpt, "-g", r"^(\d+)_"], capsys)
    assert code == 0, text
    assert "per subject" in text and "01" in text and "2/2" in text


def test_annotate_and_contact_sheet(ckpt, folder, tmp_path, capsys):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    annotated, sheet = tmp_path / "annotated", tmp_path / "sheet.png"
    code, text = run_ugn(["predict", folder, "-c", ckpt, "--annotate", annotated, "--contact-sheet", sheet], capsys)
    assert code == 1, text  # broken.jpg
    written = sorted(p.name for p in annotated.iterdir())
    assert written == ["01__finger0.jpg", "01__finger1.jpg", "02__finger0.jpg", "02__finger1.jpg"]
    original = Image.open(folder / "01__finger0.jpg")
    copy = Image.open(annotated / "01__finger0.jpg")
    assert copy.size == original.size
    banner = copy.convert("RGB").crop((0, copy.height - 6, copy.width, copy.height))
    assert max(banner.getextrema()[2]) > 100 or max(banner.getextrema()[0]) > 100, "the banner and bar are drawn"
    grid = Image.open(sheet)
    assert grid.format == "PNG" and grid.width >= 2 * 160 and grid.height >= 2 * 194  # 5 tiles: 3 x 2 grid
    code, text = run_ugn(["predict", folder, "-c", ckpt, "--annotate", annotated], capsys)
    assert code == 2 and "already exists; pass --overwrite" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modality", "palm"], "unknown modality 'palm'"),
        (["--group-by", "(unclosed"], "invalid regular expression"),
        (["-o", "out.txt"], "unknown format; use a name ending in .csv, .json, .jsonl"),
        (["--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["--contact-sheet", "sheet.jpg"], "use a file name ending in .png"),
    ],
)
def test_usage_errors_exit_2(ckpt, folder, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, text = run_ugn(["predict", folder, "-c", ckpt, *args], capsys)
    assert code == 2 and message in text, text


def test_missing_input_and_checkpoint_exit_2(ckpt, folder, tmp_path, capsys):
    code, text = run_ugn(["predict", tmp_path / "nowhere", "-c", ckpt], capsys)
    assert code == 2 and "no such file or folder" in text
    code, text = run_ugn(["predict", str(tmp_path / "*.png"), "-c", ckpt], capsys)
    assert code == 2 and "matches no file" in text
    code, text = run_ugn(["predict", folder, "-c", tmp_path / "none.pt"], capsys)
    assert code == 2 and "checkpoint not found" in text


def test_conditioned_model_without_modality_exit_2(flag_ckpt, folder, tmp_path, capsys):
    out = tmp_path / "p.csv"
    code, text = run_ugn(["predict", folder, "-c", flag_ckpt, "-o", out], capsys)
    assert code == 2 and "conditioned on the modality" in text
    assert not out.exists()


def test_real_lfw_folder_grouped_by_identity(ckpt, shared_data, tmp_path, capsys):
    """Real photos: two LFW identities, recursive, one prediction per person from the file-name pattern."""
    root = shared_data / "lfw_gender" / "lfw-deepfunneled"
    people = [p for p in (root / "Abdullah_Gul", root / "Adrien_Brody") if p.is_dir()]
    if len(people) < 2:
        pytest.skip(f"LFW identities not found under {root}")
    out = tmp_path / "lfw.csv"
    code, text = run_ugn(["predict", *people, "-c", ckpt, "-m", "face", "-g", r"^(?P<subject>.+)_\d{4}\.jpg$", "-o", out], capsys)
    assert code == 0, text
    images = read_csv(out)
    expected = sum(len(list(p.glob("*.jpg"))) for p in people)
    assert len(images) == expected and {r["status"] for r in images} == {"ok"}
    subjects = read_csv(tmp_path / "lfw.subjects.csv")
    assert [s["subject"] for s in subjects] == ["Abdullah_Gul", "Adrien_Brody"]
    assert sum(int(s["n_images"]) for s in subjects) == expected


def test_contact_sheet_captions_fit_their_tile_and_the_sheet_has_a_legend(tmp_path):
    from PIL import ImageDraw

    from unifiedgender.inference.annotate import COLOURS, LEGEND, THUMB, ContactSheet, _font, fit_text

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = _font(11)
    name = "a_very_long_subject_identifier_from_some_dataset_0042.jpg"
    fitted = fit_text(draw, name, font, THUMB - 8)
    assert draw.textlength(fitted, font=font) <= THUMB - 8 and "…" in fitted and fitted.endswith("0042.jpg")
    assert fit_text(draw, "short.jpg", font, THUMB - 8) == "short.jpg"

    image = tmp_path / "img.png"
    Image.new("RGB", (40, 40), (200, 200, 200)).save(image)
    sheet = ContactSheet(tmp_path / "sheet.png")
    sheet.add({"path": str(image), "status": "ok", "pred": "male", "confidence": 0.93})
    sheet.add({"path": str(tmp_path / name), "status": "unreadable image: cannot identify image file format",
               "pred": "", "confidence": None})
    grid = Image.open(sheet.save()).convert("RGB")
    assert grid.getpixel((10, 12)) == COLOURS["male"]  # the legend's first swatch, above the tiles
    assert grid.height == LEGEND + THUMB + 34 and grid.getpixel((THUMB // 2, LEGEND + THUMB + 30)) == COLOURS["male"]
