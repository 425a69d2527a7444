"""Where `ugn download` gets the UnifiedGenderNet release files: one table, one row per file.

The release (github.com/PatternBiometrics/UnifiedGenderNet) hosts its files on Google Drive, but its README
gives only one Drive link: the best checkpoint, 1752668630.pt
(https://drive.google.com/file/d/1yK36dx8mdG5dvxZNNc50pHoALl77M9jX). The ids of the other files are not
published in the README; they are marked `drive_id=None` here. For those, point `ugn download` at a mirror
with `--url BASE` or `UGN_DOWNLOAD_BASE_URL=BASE`: every file is then fetched from BASE/<dest>, where <dest>
is the path in the table below (e.g. BASE/checkpoints/1752668630.pt), so a mirror is just a copy of the
downloaded tree served over HTTP(S). Sizes and SHA-256 digests are not published either; once a file is
downloaded its digest is kept beside it (<file>.sha256) and checked on every later run.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_URL_ENV = "UGN_DOWNLOAD_BASE_URL"
DATASET_FOLDER = "data/Shared_Derived_HaGRID_unified_Model_For_Sex_Prediction"


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it goes (`dest`, relative to the download root) and how to check it."""

    group: str
    dest: str
    drive_id: str | None = None  # None: the release does not publish the id; a mirror (--url) is needed
    sha256: str | None = None
    size: int | None = None
    extract_to: str | None = None  # zips: folder (relative to the download root) to unpack into
    tags: tuple[str, ...] = ()
    note: str = ""

    @property
    def name(self) -> str:
        return self.dest.rsplit("/", 1)[-1]


SOURCES: tuple[RemoteFile, ...] = (
    RemoteFile("dataset", f"{DATASET_FOLDER}/train.csv", note="metadata of the training split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/val.csv", note="metadata of the validation split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/test.csv", note="metadata of the test split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/aligned_dataset.zip", extract_to=f"{DATASET_FOLDER}/images",
               note="aligned hand and face crops; unpacks to images/content/aligned_dataset/{hands,faces}"),
    RemoteFile("checkpoints", "checkpoints/1752668630.pt", drive_id="1yK36dx8mdG5dvxZNNc50pHoALl77M9jX",
               tags=("best-umcc",),
               note="README's best checkpoint, tag tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0 (F flag = UMCC option)"),
    RemoteFile("checkpoints", "checkpoints/best_mag.pt", tags=("best-mag",),
               note="best MAG checkpoint: neither its Drive id nor its file name is published"),
    RemoteFile("metrics", "metrics/final_metrics_with_full_configurations.csv",
               note="all configurations and their evaluation metrics"),
)


def select(group: str, tags: tuple[str, ...] = ()) -> list[RemoteFile]:
    """The files of `group`, restricted to those carrying any of `tags` when tags are given."""
    files = [f for f in SOURCES if f.group == group]
    return [f for f in files if set(f.tags) & set(tags)] if tags else files
