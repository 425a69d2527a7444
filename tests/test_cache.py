"""Decoded uint8 cache: geometry, corrupt images, keyed disk reuse."""

import numpy as np
from PIL import Image

from unifiedgender.data.cache import Geometry, build_cache, cache_key, decode_image


def _write(tmp_path, n=4, size=(40, 30)):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_decode_resizes_and_centre_crops(tmp_path):
    path = _write(tmp_path, 1, size=(80, 40))[0]
    arr = decode_image(path, Geometry(3, 16, 16, "bilinear", 0.875))
    assert arr.shape == (3, 16, 16) and arr.dtype == np.uint8
    gray = decode_image(path, Geometry(1, 12, 12))
    assert gray.shape == (1, 12, 12)


def test_corrupt_image_is_reported_not_fatal(tmp_path):
    paths = _write(tmp_path, 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    decoded = build_cache(paths + [str(bad), str(empty)], Geometry(3, 8, 8), mode="memory", workers=2)
    assert decoded.ok.tolist() == [True, True, True, False, False]
    assert "empty file" in decoded.status[4]
    assert set(decoded.failures) == {3, 4}
    assert decoded.images[3].max() == 0 and decoded.images[0].max() > 0


def test_disk_cache_is_reused_and_keyed_by_files_and_size(tmp_path):
    paths = _write(tmp_path)
    geometry = Geometry(3, 8, 8)
    first = build_cache(paths, geometry, mode="disk", cache_dir=tmp_path / "cache")
    assert isinstance(first.images, np.memmap) and first.path.is_file()
    mtime = first.path.stat().st_mtime_ns
    second = build_cache(paths, geometry, mode="disk", cache_dir=tmp_path / "cache")
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    assert np.array_equal(np.asarray(first.images), np.asarray(second.images))
    memory = build_cache(paths, geometry, mode="memory")
    assert np.array_equal(memory.images, np.asarray(second.images))
    assert cache_key(paths, Geometry(3, 9, 9)) != first.key
    Image.new("RGB", (5, 5)).save(paths[0])  # the file changes -> a new key
    assert cache_key(paths, geometry) != first.key


def test_cache_matches_the_eval_transform(tmp_path):
    import torch

    from unifiedgender.data import transforms

    path = _write(tmp_path, 1, size=(64, 48))[0]
    data_config = {"input_size": (3, 24, 24), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                   "interpolation": "bicubic", "crop_pct": 0.875}
    cached = decode_image(path, Geometry.from_data_config(data_config))
    expected = transforms.build_eval_transform(data_config)(Image.open(path).convert("RGB"))
    ours = (torch.tensor(cached).float() / 255 - 0.5) / 0.25
    assert torch.allclose(ours, expected, atol=1e-5)
