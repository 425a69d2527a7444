"""Tiny Adience and CelebA trees in their exact native formats, written by the tests (nothing committed)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

ADIENCE_HEADER = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"
# Per fold: (user_id, face_id, age text, gender). Users live in one fold each, as in the real benchmark.
ADIENCE_PEOPLE = {
    0: [("30601258@N03", 1, "(25, 32)", "f"), ("30601258@N03", 2, "(38, 43)", "m"), ("7153718@N04", 3, "(0, 2)", "u")],
    1: [("10792106@N03", 4, "(8, 12)", "m"), ("10792106@N03", 5, "(60, 100)", "f"), ("10792106@N03", 6, "35", "m")],
    2: [("113445054@N07", 7, "(48, 53)", "f"), ("113445054@N07", 8, "(15, 20)", "m"), ("113445054@N07", 9, "None", "f")],
    3: [("101515718@N03", 10, "(4, 6)", "f"), ("101515718@N03", 11, "(38, 48)", "m"), ("101515718@N03", 12, "(27, 32)", "")],
    4: [("115321157@N03", 13, "(25, 32)", "m"), ("115321157@N03", 14, "(8, 23)", "f"), ("115321157@N03", 15, "(0, 2)", "m")],
}
IMAGES_PER_FACE = 2
FOLDERS = {"faces": "coarse_tilt_aligned_face", "aligned": "landmark_aligned_face"}


def jpeg(seed: int, size: int = 16, male: bool | None = None) -> bytes:
    """A distinct small JPEG per seed; `male` tints it (so a one-epoch model has something to find)."""
    buffer = io.BytesIO()
    base = (seed * 37 % 200, seed * 91 % 200, seed * 13 % 200)
    tint = (60, 0, 0) if male else (0, 0, 60) if male is not None else (0, 0, 0)
    Image.new("RGB", (size, size), tuple(b + t for b, t in zip(base, tint))).save(buffer, "JPEG")
    return buffer.getvalue()


def make_adience(root: Path, folder: str = "faces", absent: int = 1, size: int = 16, crlf: bool = False) -> Path:
    """fold_0..4_data.txt (tab-separated, the real header) and `<folder>/<user>/<prefix>.<face>.<image>`.

    Each face gets IMAGES_PER_FACE photos; the last `absent` listed images are left out of the image folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    seed = 0
    written = []
    for fold, people in ADIENCE_PEOPLE.items():
        lines = [ADIENCE_HEADER]
        for user, face, age, gender in people:
            for shot in range(IMAGES_PER_FACE):
                original = f"{1000 + seed}_{face}{shot}abc_o.jpg"
                lines.append(f"{user}\t{original}\t{face}\t{age}\t{gender}\t0\t414\t1086\t1383\t-115\t30\t17")
                path = root / folder / user / f"{FOLDERS[folder]}.{face}.{original}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg(seed := seed + 1, size, male={"m": True, "f": False}.get(gender)))
                written.append(path)
        newline = "\r\n" if crlf else "\n"
        (root / f"fold_{fold}_data.txt").write_text(newline.join(lines) + newline)
    for path in written[len(written) - absent:]:
        path.unlink()
    return root


# ---- CelebA ----------------------------------------------------------------------------------------------

CELEBA_ATTRIBUTES = ("5_o_Clock_Shadow", "Arched_Eyebrows", "Male", "Smiling", "Young")
# (identity, Male, Young, partition) per image 000001.jpg, 000002.jpg, ...; identity 3 crosses partitions.
CELEBA_ROWS = [(1, 1, 1, 0), (1, 1, 1, 0), (2, -1, 1, 0), (2, -1, -1, 0), (3, 1, -1, 0), (3, 1, -1, 1),
               (4, -1, 1, 1), (5, 1, 1, 2), (6, -1, -1, 2)]


def celeba_name(index: int) -> str:
    return f"{index + 1:06d}.jpg"


def make_celeba(root: Path, variant: str = "txt", layout: str = "flat", absent: int = 1) -> Path:
    """The CelebA annotation files of `variant` (txt: original release with identities; csv: Kaggle copy
    without) and img_align_celeba/ ("flat": files in SOURCE; "release": Anno/, Eval/, Img/; Kaggle's
    nested img_align_celeba/img_align_celeba/ for csv). The last `absent` images are not written."""
    root.mkdir(parents=True, exist_ok=True)
    anno = root / "Anno" if layout == "release" else root
    evals = root / "Eval" if layout == "release" else root
    images = {"flat": root / "img_align_celeba", "release": root / "Img" / "img_align_celeba",
              "kaggle": root / "img_align_celeba" / "img_align_celeba"}[layout]
    for folder in (anno, evals, images):
        folder.mkdir(parents=True, exist_ok=True)
    values = [[1 if (i + j) % 2 else -1 for j in range(len(CELEBA_ATTRIBUTES))] for i in range(len(CELEBA_ROWS))]
    for i, (_, male, young, _) in enumerate(CELEBA_ROWS):
        values[i][CELEBA_ATTRIBUTES.index("Male")] = male
        values[i][CELEBA_ATTRIBUTES.index("Young")] = young
    if variant == "txt":
        lines = [str(len(CELEBA_ROWS)), " ".join(CELEBA_ATTRIBUTES) + " "]
        lines += [celeba_name(i) + " " + " ".join(f"{v:2d}" for v in row) for i, row in enumerate(values)]
        (anno / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (anno / "identity_CelebA.txt").write_text("".join(f"{celeba_name(i)} {r[0]}\n" for i, r in enumerate(CELEBA_ROWS)))
        (evals / "list_eval_partition.txt").write_text("".join(f"{celeba_name(i)} {r[3]}\n" for i, r in enumerate(CELEBA_ROWS)))
    else:
        lines = ["image_id," + ",".join(CELEBA_ATTRIBUTES)]
        lines += [celeba_name(i) + "," + ",".join(str(v) for v in row) for i, row in enumerate(values)]
        (anno / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
        (evals / "list_eval_partition.csv").write_text(
            "image_id,partition\n" + "".join(f"{celeba_name(i)},{r[3]}\n" for i, r in enumerate(CELEBA_ROWS)))
    for i, (_, male, _, _) in enumerate(CELEBA_ROWS[: len(CELEBA_ROWS) - absent]):
        (images / celeba_name(i)).write_bytes(jpeg(i + 1, male=male == 1))
    return root


CELEBA_PARTITION_BOUNDS = (162_770, 182_637)  # first validation and first test image of the release
CELEBA_FULL_SIZE = 202_599


def write_full_size_celeba(root: Path, size: int = CELEBA_FULL_SIZE) -> Path:
    """The original release's three annotation files (40 attributes, 20 images per identity, the official
    partition boundaries scaled to `size` rows; the real count by default) and a placeholder file per image
    (distinct bytes of equal size, so the duplicate check hashes every one). For the import test and
    benchmarks/celeba_import.py; never committed."""
    names = [celeba_name(i) for i in range(size)]
    attributes = [f"Attr_{j}" for j in range(38)] + ["Male", "Young"]
    row = " ".join(["-1", " 1"] * 20)
    train_end, val_end = (round(size * bound / CELEBA_FULL_SIZE) for bound in CELEBA_PARTITION_BOUNDS)
    root.mkdir(parents=True, exist_ok=True)
    (root / "list_attr_celeba.txt").write_text(
        f"{size}\n{' '.join(attributes)}\n" + "".join(f"{m} {row}\n" for m in names))
    (root / "identity_CelebA.txt").write_text("".join(f"{m} {i // 20 + 1}\n" for i, m in enumerate(names)))
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{m} {0 if i < train_end else 1 if i < val_end else 2}\n" for i, m in enumerate(names)))
    images = root / "img_align_celeba"
    images.mkdir(exist_ok=True)
    for m in names:
        (images / m).write_bytes(m.encode())
    return root
