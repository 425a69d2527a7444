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


def test_a_full_disk_is_a_clear_error_before_decoding(tmp_path, monkeypatch):
    """A sparse memory map on a full disk dies with SIGBUS mid-build: check the space first, name the fix."""
    import shutil

    import pytest

    from unifiedgender.data import cache as cache_module
    from unifiedgender.errors import UserError

    paths = _write(tmp_path, 3)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    decoded = []
    monkeypatch.setattr(cache_module, "decode_image", lambda *a: decoded.append(a))
    with pytest.raises(UserError, match=r"needs 0\.00 GiB in .*cache but 0\.00 GiB is free .*UGN_CACHE_DIR"):
        build_cache(paths, Geometry(3, 16, 16), mode="disk", cache_dir=tmp_path / "cache")
    left = [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"]
    assert decoded == [] and left == [], "nothing decoded, nothing left behind"


def test_the_cache_file_is_allocated_in_full(tmp_path):
    from unifiedgender.data.cache import allocate_npy

    allocate_npy(tmp_path / "a.npy", (20, 3, 64, 64))
    stat = (tmp_path / "a.npy").stat()
    assert stat.st_size >= 20 * 3 * 64 * 64 and stat.st_blocks * 512 >= stat.st_size  # not sparse
    assert np.load(tmp_path / "a.npy", mmap_mode="r").shape == (20, 3, 64, 64)


class _Threads:
    """A Coordinator for ranks that are threads of one process (the Runtime does this over gloo)."""

    def __init__(self, rank, world, barrier, board):
        self.rank, self.world_size, self._barrier, self._board = rank, world, barrier, board

    def cpu_barrier(self):
        self._barrier.wait()

    def cpu_broadcast(self, obj):
        if self.rank == 0:
            self._board["broadcast"] = obj
        self._barrier.wait()
        value = self._board["broadcast"]
        self._barrier.wait()
        return value

    def cpu_gather(self, obj):
        self._board[self.rank] = obj
        self._barrier.wait()
        values = [self._board[r] for r in range(self.world_size)]
        self._barrier.wait()
        return values


def test_ranks_decode_shares_of_one_disk_cache_and_rank_0_computes_the_key(tmp_path, monkeypatch):
    import threading

    from unifiedgender.data import cache as cache_module

    paths = _write(tmp_path, 5)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    paths.append(str(bad))
    geometry = Geometry(3, 8, 8)
    reference = build_cache(paths, geometry, mode="memory")
    shares, keys = [], []
    real_fill, real_key = cache_module._fill, cache_module.cache_key

    def fill(out, paths, geometry, workers, progress, indices=None):
        shares.append(sorted(indices))
        return real_fill(out, paths, geometry, workers, progress, indices)

    monkeypatch.setattr(cache_module, "_fill", fill)
    monkeypatch.setattr(cache_module, "cache_key", lambda *a: keys.append(1) or real_key(*a))
    barrier, board, results = threading.Barrier(2), {}, {}

    def rank(r):
        results[r] = build_cache(paths, geometry, mode="disk", cache_dir=tmp_path / "cache", workers=1,
                                 coordinator=_Threads(r, 2, barrier, board))

    threads = [threading.Thread(target=rank, args=(r,), name=f"rank{r}-main") for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(keys) == 1
    assert sorted(shares) == [[0, 2, 4], [1, 3, 5]]
    for result in results.values():
        assert result.path is not None and result.path.suffix == ".npy"
        np.testing.assert_array_equal(result.images, reference.images)
        assert result.status == reference.status and not result.status[5] == "ok"
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json", ".lock", ".npy"]
