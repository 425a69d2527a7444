"""Any input: every awkward or hostile file is either read correctly or reported with a reason, one test each,
and a folder mixing them all is predicted through `ugn predict` with the failures in the status column."""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn  # noqa: F401 (autouse fixture)
from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.inference import Predictor


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand (so the header can claim anything)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw_rows)) + _chunk(b"IEND", b"")


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def photo(size=(40, 30)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------ failures with a reason
def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"^empty file \(0 bytes\)$"):
        load_image(path)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("subject,gender\n1,male\n")
    with pytest.raises(ImageReadError, match=r"^not an image \(unrecognised format\)$"):
        load_image(path)


def test_corrupt_jpeg_body(tmp_path):
    data = bytearray(jpeg_bytes(photo()))
    data[200:] = bytes(len(data) - 200)  # valid header, zeroed entropy-coded data and no end marker
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data[:-300]))
    with pytest.raises(ImageReadError, match="corrupt or truncated image"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(photo((200, 150)))
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated image: image file is truncated"):
        load_image(path)


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    photo((200, 150)).save(buffer, format="PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(ImageReadError, match="corrupt or truncated image"):
        load_image(path)


def test_decompression_bomb_beyond_pillows_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(30_000, 30_000, 8, 2, b"\x00" * 1000))  # 1 KB claiming 900 megapixels
    assert path.stat().st_size < 2000
    with pytest.raises(ImageReadError, match="possible decompression bomb"):
        load_image(path)


def test_decompression_bomb_below_pillows_limit_hits_our_cap(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(9_000, 8_000, 8, 2, b"\x00" * 1000))  # 72 MP: under Pillow's error, over our cap
    with pytest.raises(ImageReadError, match=r"too many pixels \(9000x8000 > 64,000,000\); possible decompression bomb"):
        load_image(path)
    with pytest.raises(ImageReadError, match=r"too many pixels \(9000x8000 > 1,000\)"):
        load_image(path, max_pixels=1000)


# ---------------------------------------------------------------------------------------- converted correctly
def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(path, quality=100)  # pure cyan
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_allclose(image.getpixel((8, 8)), (0, 255, 255), atol=3)


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.png"
    values = np.array([[0, 0x4000, 0x8000, 0xFFFF]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    image = load_image(path)
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [0, 64, 128, 255]


def test_16bit_rgb_png(tmp_path):
    rows = np.zeros((4, 4, 3), dtype=">u2")
    rows[..., 0], rows[..., 1], rows[..., 2] = 0xFFFF, 0x8000, 0x0100
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(4, 4, 16, 2, raw))
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (4, 4)
    np.testing.assert_allclose(image.getpixel((1, 1)), (255, 128, 1), atol=1)


def test_palette_png_with_and_without_transparency(tmp_path):
    palette = [0, 0, 0, 200, 10, 20] + [0] * 762
    plain = Image.new("P", (8, 8), 1)
    plain.putpalette(palette)
    plain.save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").getpixel((3, 3)) == (200, 10, 20)
    transparent = plain.copy()
    transparent.save(tmp_path / "palette_t.png", transparency=1)
    assert load_image(tmp_path / "palette_t.png").getpixel((3, 3)) == (255, 255, 255)


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent blue
    image.putpixel((1, 0), (0, 0, 0, 128))  # half-transparent black
    image.save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((4, 4)) == (255, 0, 0)
    assert 120 <= loaded.getpixel((1, 0))[0] <= 135


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.new("L", (8, 8), 77).save(tmp_path / "gray.png")
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.mode == "RGB" and loaded.getpixel((2, 2)) == (77, 77, 77)
    assert load_image(tmp_path / "gray.png", mode="L").getpixel((2, 2)) == 77


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste((255, 0, 0), (0, 0, 6, 6))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_bytes(stored, exif=exif))
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    assert loaded.getpixel((17, 2))[0] > 200, "the stored top-left must appear top-right after the rotation"
    assert loaded.getpixel((2, 2))[0] < 60


# ------------------------------------------------------------------------------- all of them through predict
def _make_all_cases(folder: Path) -> dict[str, str]:
    """Every case in one folder; returns file name -> expected status ('ok' or a reason fragment)."""
    folder.mkdir()
    base = photo((48, 40))
    expected = {}
    base.save(folder / "a_plain.png"); expected["a_plain.png"] = "ok"
    base.convert("CMYK").save(folder / "cmyk.jpg"); expected["cmyk.jpg"] = "ok"
    Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)).save(folder / "gray16.png")
    expected["gray16.png"] = "ok"
    base.convert("P").save(folder / "palette.png"); expected["palette.png"] = "ok"
    base.convert("RGBA").save(folder / "rgba.png"); expected["rgba.png"] = "ok"
    base.convert("L").save(folder / "gray.png"); expected["gray.png"] = "ok"
    exif = Image.Exif()
    exif[0x0112] = 8
    (folder / "exif.jpg").write_bytes(jpeg_bytes(base, exif=exif)); expected["exif.jpg"] = "ok"
    (folder / "zero.jpg").write_bytes(b""); expected["zero.jpg"] = "empty file"
    (folder / "text.png").write_text("not a picture"); expected["text.png"] = "not an image"
    full = jpeg_bytes(photo((300, 200)))
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2]); expected["truncated.jpg"] = "truncated"
    (folder / "bomb.png").write_bytes(png_bytes(40_000, 40_000, 8, 2, b"\x00" * 100))
    expected["bomb.png"] = "decompression bomb"
    (folder / "heavy16.png").write_bytes(png_bytes(6000, 6000, 16, 6, b"\x00" * 100))  # 288 MB of samples
    expected["heavy16.png"] = "too large to decode"
    (folder / "loop_a.jpg").symlink_to("loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to("loop_a.jpg")
    expected["loop_a.jpg"] = expected["loop_b.jpg"] = "Too many levels of symbolic links"
    (folder / "dangling.jpg").symlink_to("nowhere.jpg")
    expected["dangling.jpg"] = "No such file or directory"
    (folder / "linked.png").symlink_to("a_plain.png")
    expected["linked.png"] = "ok"
    os.mkfifo(folder / "fifo.jpg")  # opening it would block the run forever
    expected["fifo.jpg"] = "cannot open: not a regular file (a special file)"
    return expected


def test_every_case_through_ugn_predict(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "model.pt")
    expected = _make_all_cases(tmp_path / "mixed")
    out = tmp_path / "predictions.csv"
    code, text = run_ugn(["predict", tmp_path / "mixed", "--checkpoint", ckpt, "-o", out, "--batch-size", "4"], capsys)
    assert code == 1, text  # some images failed
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(expected)
    for name, want in expected.items():
        row = rows[name]
        if want == "ok":
            assert row["status"] == "ok", (name, row["status"])
            assert 0.0 <= float(row["prob_male"]) <= 1.0
        else:
            assert want in row["status"], (name, row["status"])
            assert row["prob_male"] == "" and row["pred"] == ""
    assert re.search(r"failed\s*│\s*9\s*│", text), text


def test_broken_links_named_on_the_command_line_get_rows(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "model.pt")
    photo().save(tmp_path / "good.png")
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "gone.png").symlink_to("missing.png")
    out = tmp_path / "p.csv"
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "list.csv").write_text(f"path\nfolder.png\ngood.png\n")
    code, text = run_ugn(["predict", tmp_path / "loop.png", tmp_path / "gone.png", tmp_path / "list.csv",
                          "-c", ckpt, "-o", out], capsys)
    assert code == 1 and "Traceback" not in text, text
    statuses = {Path(r["path"]).name: r["status"] for r in csv.DictReader(out.open())}
    assert statuses["good.png"] == "ok"
    assert "symbolic links" in statuses["loop.png"] and "No such file" in statuses["gone.png"]
    assert statuses["folder.png"] == "cannot open: not a regular file (a folder)"


def nan_checkpoint(tmp_path: Path) -> Path:
    """A real checkpoint whose weights are all NaN (what a diverged training run saves)."""
    import torch

    from unifiedgender.checkpoint import read_checkpoint

    payload = read_checkpoint(make_checkpoint(tmp_path / "model.pt"))
    payload["state_dict"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "nan.pt")
    return tmp_path / "nan.pt"


def test_nan_outputs_are_failures_not_labels(tmp_path, capsys):
    """Item 4: no label and no `ok` for a NaN probability; a non-zero exit; loading warns."""
    from unifiedgender.checkpoint import NonFiniteWeightsWarning, load_checkpoint
    from unifiedgender.inference.predictor import NON_FINITE

    ckpt = nan_checkpoint(tmp_path)
    with pytest.warns(NonFiniteWeightsWarning, match="weight tensors hold NaN or infinite values"):
        load_checkpoint(ckpt)
    photo().save(tmp_path / "a.png")
    for engine in ("torch", "auto"):
        out = tmp_path / f"{engine}.csv"
        with pytest.warns(NonFiniteWeightsWarning):
            code, text = run_ugn(["predict", tmp_path / "a.png", "-c", ckpt, "-o", out, "--engine", engine], capsys)
        assert code == 1, text
        (row,) = csv.DictReader(out.open())
        assert row["status"] == NON_FINITE and row["pred"] == "" and row["prob_male"] == ""


# ------------------------------------------------------------------------------------ memory: decoded bytes
def test_decoded_bytes_count_the_sample_depth(tmp_path):
    """Item 6: a 16-bit RGBA image costs 8 bytes a pixel; the cap applies to that, not to the pixel count."""
    rows = b"".join(b"\x00" + bytes(100 * 8) for _ in range(100))
    (tmp_path / "rgba16.png").write_bytes(png_bytes(100, 100, 16, 6, rows))
    Image.new("RGBA", (100, 100), (1, 2, 3, 255)).save(tmp_path / "rgba8.png")
    with pytest.raises(ImageReadError, match=r"too large to decode \(100x100, 0 MB of pixel data > 0 MB\)"):
        load_image(tmp_path / "rgba16.png", max_bytes=50_000)  # 80,000 bytes of samples
    assert load_image(tmp_path / "rgba8.png", max_bytes=50_000).size == (100, 100)  # 40,000 bytes


def test_header_claiming_a_huge_16bit_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "rgba16.png"
    path.write_bytes(png_bytes(7000, 7000, 16, 6, b"\x00" * 100))  # 49 MP: under the pixel cap; 392 MB of samples
    with pytest.raises(ImageReadError, match=r"too large to decode \(7000x7000, 392 MB of pixel data > 192 MB\)"):
        load_image(path)


def test_large_jpeg_is_reduced_while_decoding(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(photo((400, 300))))  # 360,000 bytes of 8-bit RGB
    assert load_image(path).size == (400, 300)
    assert load_image(path, max_bytes=100_000).size == (200, 150)  # DCT-scaled by 2 while decoding
    assert load_image(path, max_bytes=10_000).size == (50, 38)  # at most by 8


# ------------------------------------------------------------------------ one-line errors (item 8, item 9)
def test_output_that_is_a_folder_is_refused_before_predicting(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "model.pt")
    photo().save(tmp_path / "a.png")
    (tmp_path / "out.csv").mkdir()
    code, text = run_ugn(["predict", tmp_path / "a.png", "-c", ckpt, "-o", tmp_path / "out.csv", "--overwrite"], capsys)
    assert code == 2 and "out.csv is a folder; give a file name with -o" in text and "predicting" not in text, text


def test_empty_folder_is_an_error_not_an_empty_table(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "empty").mkdir()
    code, text = run_ugn(["predict", tmp_path / "empty", "-c", ckpt, "-o", tmp_path / "p.csv"], capsys)
    assert code == 2 and "no image files in" in text and not (tmp_path / "p.csv").exists(), text


def test_checkpoint_claiming_a_huge_input_size_is_refused(tmp_path, capsys):
    import torch

    from unifiedgender.checkpoint import read_checkpoint

    payload = read_checkpoint(make_checkpoint(tmp_path / "model.pt"))
    payload["data_config"]["input_size"] = (3, 30000, 30000)
    torch.save(payload, tmp_path / "huge.pt")
    photo().save(tmp_path / "a.png")
    code, text = run_ugn(["predict", tmp_path / "a.png", "-c", tmp_path / "huge.pt"], capsys)
    assert code == 2 and text.startswith("error: ") and "input_size (3, 30000, 30000) must be" in text, text


def test_csv_passed_as_a_checkpoint(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,subject_id,gender,modality\na.png,1,male,hand\n")
    photo().save(tmp_path / "a.png")
    code, text = run_ugn(["predict", tmp_path / "a.png", "-c", tmp_path / "m.csv"], capsys)
    assert code == 2 and "m.csv: not a readable PyTorch file (it starts with 'path,subject_id" in text, text
    assert "torch.load" not in text and "weights_only" not in text and len(text.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    from unifiedgender.inference.export import export_checkpoint

    folder = tmp_path_factory.mktemp("onnx")
    return export_checkpoint(make_checkpoint(folder / "model.pt"), "onnx")["output"]


def _edited_onnx(source: Path, target: Path, edit) -> Path:
    import onnx

    proto = onnx.load(str(source))
    edit(proto)
    onnx.save(proto, str(target))
    return target


def _set_meta(key: str, value: str):
    def edit(proto):
        for prop in proto.metadata_props:
            if prop.key == key:
                prop.value = value
    return edit


@pytest.mark.parametrize("key, value, message", [
    ("ugn.data_config", "{not json", "metadata ugn.data_config is not valid JSON"),
    ("ugn.data_config", "[" * 100_000, "metadata ugn.data_config is 100,000 characters long"),
    ("ugn.data_config", '{"input_size": [3, 30000, 30000], "mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": '
                        '"bilinear", "crop_pct": 1}', "input_size [3, 30000, 30000] must be"),
    ("ugn.modalities", '"hand"', "metadata ugn.modalities hand is not a list"),
])
def test_bad_onnx_metadata_is_one_line(tmp_path, capsys, onnx_export, key, value, message):
    model = _edited_onnx(onnx_export, tmp_path / "bad.onnx", _set_meta(key, value))
    photo().save(tmp_path / "a.png")
    code, text = run_ugn(["predict", tmp_path / "a.png", "-c", model], capsys)
    assert code == 2 and message in text and "Traceback" not in text, text


def test_onnx_with_external_data_paths_is_refused(tmp_path, capsys, onnx_export):
    import onnx

    def point_outside(proto):
        tensor = proto.graph.initializer[0]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "../../../../etc/passwd"
        tensor.ClearField("raw_data")

    model = _edited_onnx(onnx_export, tmp_path / "ext.onnx", point_outside)
    photo().save(tmp_path / "a.png")
    code, text = run_ugn(["predict", tmp_path / "a.png", "-c", model], capsys)
    assert code == 2 and "weights stored in external files" in text and "Traceback" not in text, text


# --------------------------------------------------------------------------------------------- archives
def test_duplicate_zip_entries_are_refused(tmp_path):
    """Item 9: two entries unpacking to one file would silently overwrite each other."""
    import zipfile

    from unifiedgender.data.safezip import safe_unpack
    from unifiedgender.errors import UserError

    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/a.txt", "first")
        zf.writestr("data/./a.txt", "second")
    with pytest.raises(UserError, match=r"entries 'data/a.txt' and 'data/\./a.txt' unpack to the same file"):
        safe_unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- outputs on shared folders
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask, file_mode, dir_mode):
    """Item 5: new files and folders get the umask's mode; a replaced file keeps its own (a shared 0664 registry)."""
    import os
    import stat

    from unifiedgender.evaluation.runlog import append_run
    from unifiedgender.fileio import atomic_write, replace_dir, staging_dir

    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.csv") as handle:
            handle.write("a\n")
        registry = tmp_path / "registry.csv"
        append_run(registry, {"tag": "x"})
        os.chmod(registry, 0o660)
        append_run(registry, {"tag": "y"})
        with staging_dir(tmp_path / "report") as building:
            (building / "r.md").write_text("x")
            replace_dir(building, tmp_path / "report")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "new.csv") == file_mode
    assert mode(registry) == 0o660 and len(registry.read_text().splitlines()) == 3
    assert mode(tmp_path / "report") == dir_mode


def test_parts_left_by_a_killed_writer_are_removed(tmp_path):
    """Item 9: `.part` files of a dead process disappear at the next write of that file; a live writer's stay."""
    import os
    import socket
    import subprocess
    import sys

    from unifiedgender.fileio import atomic_write

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".last.pt.abcd1234.{dead.stdout.strip()}@{host}.part"
    live = tmp_path / f".last.pt.abcd5678.{os.getpid()}@{host}.part"
    foreign = tmp_path / ".last.pt.abcd9999.1@another-host.part"
    for part in (stale, live, foreign):
        part.write_bytes(b"partial")
    with atomic_write(tmp_path / "last.pt", "wb") as handle:
        handle.write(b"complete")
    assert not stale.exists() and live.exists() and foreign.exists()
    assert (tmp_path / "last.pt").read_bytes() == b"complete"


def test_exif_rotated_photo_predicts_like_the_upright_image(tmp_path):
    """The orientation is applied inside the prediction pipeline, not only in load_image."""
    ckpt = make_checkpoint(tmp_path / "model.pt")
    upright = photo((30, 50))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes with orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "camera.png", exif=exif)
    upright.save(tmp_path / "upright.png")
    stored.save(tmp_path / "sideways.png")
    predictor = Predictor.from_checkpoint(ckpt)
    probs = {Path(r["path"]).stem: r["prob_male"]
             for r in predictor.predict_paths([tmp_path / n for n in ("camera.png", "upright.png", "sideways.png")])}
    assert probs["camera"] == pytest.approx(probs["upright"], abs=1e-6)
    assert probs["camera"] != pytest.approx(probs["sideways"], abs=1e-4)
