"""Where `ugn download` gets the UnifiedGenderNet release files: one table, one row per file.

The release (github.com/PatternBiometrics/UnifiedGenderNet) hosts its files on Google Drive; the ids below are
the ones its download scripts use (scripts/download_derived_hagrid.py, download_checkpoints.py,
download_metrics_csv.py). All checkpoints live in one Drive folder (`CHECKPOINT_FOLDER_ID`), listed with
gdown's folder download; the table names the two best ones. A mirror (`--url BASE` or
`UGN_DOWNLOAD_BASE_URL=BASE`) serves every file at BASE/<dest>, where <dest> is the path in the table
(e.g. BASE/checkpoints/1752668630.pt), so a mirror is just a copy of the downloaded tree served over HTTP(S).
Sizes and SHA-256 digests are not published; once a file is downloaded and its content checked, its digest
is kept beside it (<file>.sha256) and checked on every later run.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_URL_ENV = "UGN_DOWNLOAD_BASE_URL"
DATASET_FOLDER = "data/Shared_Derived_HaGRID_unified_Model_For_Sex_Prediction"
CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_FOLDER_ID = "1iq91ulrO0WSW778Qd0-O9cD09pe4WaR5"  # the Drive folder holding every released checkpoint
RELEASE_BACKBONE = "tf_efficientnetv2_s.in1k"  # the backbone of every released checkpoint (release README)
KINDS = {".zip": "zip", ".csv": "csv", ".pt": "torch", ".pth": "torch"}


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it goes (`dest`, relative to the download root) and how to check it."""

    group: str
    dest: str
    drive_id: str
    sha256: str | None = None
    size: int | None = None
    extract_to: str | None = None  # zips: folder (relative to the download root) to unpack into
    tags: tuple[str, ...] = ()  # selectors of `ugn download checkpoints` (--best-umcc, --best-mag)
    run_tag: str | None = None  # checkpoints whose name is not their run tag: the tag the release gives them
    note: str = ""

    @property
    def name(self) -> str:
        return self.dest.rsplit("/", 1)[-1]

    @property
    def kind(self) -> str | None:
        """'zip', 'csv' or 'torch' (what the content must look like), from the file's suffix; None: unchecked."""
        dot = self.name.rfind(".")
        return KINDS.get(self.name[dot:].lower()) if dot > 0 else None


SOURCES: tuple[RemoteFile, ...] = (
    RemoteFile("dataset", f"{DATASET_FOLDER}/train.csv", "1W136bhwoVzT_ipjzABLie377wNNW8H6b",
               note="metadata of the training split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/val.csv", "1hilEWBh1GHsi469CQ5zckZnmqBOMo73q",
               note="metadata of the validation split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/test.csv", "1dXKcOGVHGKRSERFoVN1HSSM-g7SlWnlf",
               note="metadata of the test split"),
    RemoteFile("dataset", f"{DATASET_FOLDER}/aligned_dataset.zip", "1-52CWGkVhs4k3uWtvAdSz7tvplSX0_84",
               extract_to=f"{DATASET_FOLDER}/images",
               note="aligned hand and face crops; unpacks to images/content/aligned_dataset/{hands,faces}"),
    RemoteFile("checkpoints", f"{CHECKPOINT_FOLDER}/1752668630.pt", "1yK36dx8mdG5dvxZNNc50pHoALl77M9jX",
               tags=("best-umcc",), run_tag=f"{RELEASE_BACKBONE}_F0_Af_Lf_Z0",
               note="best UMCC (the README calls it flag off; its classifier width decides)"),
    RemoteFile("checkpoints", f"{CHECKPOINT_FOLDER}/{RELEASE_BACKBONE}_F0_Af_Lb_Z0_gating=soft_seed42.pt",
               "1dtaaEXrHwNI_vhO327DyUL74_5gFCeSX", tags=("best-mag",), note="best MAG (soft gating)"),
    RemoteFile("metrics", "metrics/final_metrics_with_full_configurations.csv", "1jLmMtNAKdMfsJaigezZz-iJa-_T624Kv",
               note="all configurations and their evaluation metrics"),
)


def select(group: str, tags: tuple[str, ...] = ()) -> list[RemoteFile]:
    """The files of `group`, restricted to those carrying any of `tags` when tags are given."""
    files = [f for f in SOURCES if f.group == group]
    return [f for f in files if set(f.tags) & set(tags)] if tags else files


def release_run_tag(file_name: str) -> str | None:
    """The run tag the release gives a checkpoint file name that is not itself a tag (e.g. 1752668630.pt)."""
    return next((f.run_tag for f in SOURCES if f.name == file_name and f.run_tag), None)
