"""Any input: every awkward or hostile file is either read correctly or reported with a reason, one test each,
and a folder mixing them all is predicted through `ugn predict` with the failures in the status column."""

from __future__ import annotations

import csv
import io
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
            assert row["prob_male"] == "" and row["label"] == ""
    assert re.search(r"failed\s*│\s*4\s*│", text), text


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
