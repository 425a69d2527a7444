"""How fast `ugn data import celeba` reads the full CelebA release layout (202,599 rows, every image present).

Writes the release's three annotation files and a placeholder per image into a temporary folder (the writer of
tests/face_dataset_fixtures.py), then measures, in one run, CPU seconds of
  baseline: what any importer must do: read the three annotation files with pandas and stat every image;
  import:   unifiedgender.data.importers.import_dataset("celeba", ...) (parse, join, duplicate check by content);
and prints both and their ratio. The target (docs/benchmarks.md): the import within 10x the baseline.

Usage: python benchmarks/celeba_import.py [--rows N]   (needs ~1 GB free in $TMPDIR for the full size)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from face_dataset_fixtures import CELEBA_FULL_SIZE, write_full_size_celeba  # noqa: E402


def baseline(root: Path) -> None:
    """Read the annotations and stat every listed image: the work no importer can skip."""
    import pandas as pd

    names = pd.read_csv(root / "identity_CelebA.txt", sep=" ", header=None)[0]
    pd.read_csv(root / "list_eval_partition.txt", sep=" ", header=None)
    pd.read_csv(root / "list_attr_celeba.txt", sep=r"\s+", skiprows=1)
    images = root / "img_align_celeba"
    for name in names:
        os.stat(images / name)


def cpu_seconds(work, *args) -> float:
    start = time.process_time()
    work(*args)
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=CELEBA_FULL_SIZE)
    args = parser.parse_args()
    from unifiedgender.data.importers import import_dataset

    with tempfile.TemporaryDirectory() as folder:
        root = write_full_size_celeba(Path(folder) / "celeba", size=args.rows)
        base = cpu_seconds(baseline, root)
        imported = cpu_seconds(import_dataset, "celeba", root)
    print(f"CelebA import, {args.rows:,} rows: baseline {base:.1f} CPU s, import {imported:.1f} CPU s, "
          f"ratio {imported / base:.1f}x (target <= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
