"""Print an evaluation report folder (report.md written by `ugn evaluate`) as a docs section (stdlib only).

Usage: summarize.py REPORT_DIR [--level N]
       summarize.py REPORT_DIR [REPORT_DIR ...] --rows   (one summary-table row per report, from report.json)
       summarize.py RUN_DIR [RUN_DIR ...] --validation   (one row per training run: what validation saw)
       summarize.py REPORT_A REPORT_B [REPORT_A REPORT_B ...] --paired   (B minus A on the same test images)
       summarize.py FOLD_REPORT [FOLD_REPORT ...] --folds   (one row per fold, then mean ± sd over the folds)
       summarize.py REPORT_DIR [REPORT_DIR ...] --seeds   (mean ± sd over the reports of each run name, e.g. seeds)

Keeps the report's header lines, its metrics and confusion-matrix tables and its fairness tables; drops the
embedded plots (results.md does not commit PNGs) and shifts the headings down by N levels (default 2).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path


def section(report_dir: Path, level: int) -> str:
    lines = (report_dir / "report.md").read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        if line.startswith("# ") or line.startswith("!["):
            continue
        if line.startswith("##"):
            line = "#" * level + line
        kept.append(line)
    text = "\n".join(kept).strip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


ROW_HEADER = (
    "| run | images (subjects) | threshold | image BA [95% CI] | image ROC-AUC | subject BA | subject ROC-AUC "
    "| majority baseline: accuracy / BA |\n|---|---|---|---|---|---|---|---|"
)


def _cell(level: dict, metric: str) -> str:
    value, ci = level["metrics"].get(metric), level["ci"].get(metric) or [None, None]
    if value is None:
        return "n/a"
    low, high = ci
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None and high is not None else f"{value:.3f}"


def _run_name(report_dir: Path) -> str:
    """EXP/RUN/report -> "EXP/RUN" (the report folder's name is kept when it is not "report")."""
    return "/".join([report_dir.parent.parent.name, report_dir.parent.name]
                    + ([report_dir.name] if report_dir.name != "report" else []))


def row(report_dir: Path) -> str:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    image, subject = report["image_level"], report["subject_level"]
    base = image["baseline"]
    name = _run_name(report_dir)
    return (f"| {name} | {image['n']} ({subject['n']}) "
            f"| {report['threshold']['value']:.3f} ({report['threshold']['method']}) "
            f"| {_cell(image, 'balanced_accuracy')} | {_cell(image, 'roc_auc')} | {_cell(subject, 'balanced_accuracy')} "
            f"| {_cell(subject, 'roc_auc')} | {base['accuracy']:.3f} / {base['balanced_accuracy']:.3f} |")


VALIDATION_HEADER = (
    "| run | tag | input | best.pt by | best epoch | val BA @0.5 | val ROC-AUC | val ROC-AUC, mirror TTA |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _config(run_dir: Path) -> dict[str, str]:
    """The flat `key: value` lines of a run's config.yaml (all that is needed here; no YAML library)."""
    pairs = (line.split(":", 1) for line in (run_dir / "config.yaml").read_text(encoding="utf-8").splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _val_auc(report_dir: Path) -> str:
    path = report_dir / "report.json"
    if not path.is_file():
        return "-"
    return f"{json.loads(path.read_text(encoding='utf-8'))['image_level']['metrics']['roc_auc']:.3f}"


def validation_row(run_dir: Path) -> str:
    """The epoch `ugn train` kept (first best by select_metric, as the tool chooses) and its validation figures."""
    config = _config(run_dir)
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        history = list(csv.DictReader(handle))
    metric = config.get("select_metric", "val_balanced_acc")
    sign = -1.0 if metric.endswith("loss") else 1.0
    scores = [sign * float(r[metric]) if r[metric] not in ("", "nan") else float("-inf") for r in history]
    best = history[scores.index(max(scores))]
    tta = _val_auc(run_dir / "val_report_tta")
    name = f"{run_dir.parent.name}/{run_dir.name}"
    return (f"| {name} | `{config['tag']}` | {config.get('image_size', '?')} px | {metric} | {best['epoch']} of {len(history)} "
            f"| {float(best['val_balanced_acc']):.3f} | {float(best['val_auc']):.3f} | {tta} |")


PAIRED_HEADER = (
    "| B minus A | images (subjects) | image BA difference [95% CI] | image ROC-AUC difference [95% CI] |\n"
    "|---|---|---|---|"
)


def _scored_rows(report_dir: Path) -> tuple[dict[str, tuple[str, int, float]], float]:
    """{path: (subject, male?, P(male))} of the readable rows, and the report's threshold."""
    threshold = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))["threshold"]["value"]
    with (report_dir / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        rows = {r["path"]: (r["subject_id"], int(r["gender"] == "male"), float(r["prob_male"]))
                for r in csv.DictReader(handle) if r.get("status", "ok") == "ok" and r["prob_male"] not in ("", "nan")}
    return rows, threshold


def _weighted_ba(y: list[int], pred: list[int], w: list[float]) -> float:
    tp = sum(wi for yi, pi, wi in zip(y, pred, w) if yi and pi)
    pos = sum(wi for yi, wi in zip(y, w) if yi)
    tn = sum(wi for yi, pi, wi in zip(y, pred, w) if not yi and not pi)
    neg = sum(wi for yi, wi in zip(y, w) if not yi)
    return (tp / pos + tn / neg) / 2 if pos and neg else float("nan")


def _weighted_auc(order: list[int], y: list[int], probs: list[float], w: list[float]) -> float:
    """ROC-AUC with image weights (ties count one half); `order` sorts the images by score once for all resamples."""
    below = total_pos = total_neg = area = 0.0
    i = 0
    while i < len(order):
        j, pos, neg = i, 0.0, 0.0
        while j < len(order) and probs[order[j]] == probs[order[i]]:
            k = order[j]
            pos, neg = (pos + w[k], neg) if y[k] else (pos, neg + w[k])
            j += 1
        area += pos * (below + 0.5 * neg)
        below += neg
        total_pos, total_neg = total_pos + pos, total_neg + neg
        i = j
    return area / (total_pos * total_neg) if total_pos and total_neg else float("nan")


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(v for v in values if v == v)
    pick = lambda q: values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]  # noqa: E731
    return pick(0.025), pick(0.975)


def paired_row(a_dir: Path, b_dir: Path, resamples: int = 1000, seed: int = 0) -> str:
    """B minus A on the images both evaluated, each at its own threshold; subjects resampled jointly (paired)."""
    (a_rows, a_cut), (b_rows, b_cut) = _scored_rows(a_dir), _scored_rows(b_dir)
    paths = sorted(set(a_rows) & set(b_rows))
    subjects = sorted({a_rows[p][0] for p in paths})
    index = {s: i for i, s in enumerate(subjects)}
    owner = [index[a_rows[p][0]] for p in paths]
    y = [a_rows[p][1] for p in paths]
    a_prob, b_prob = [a_rows[p][2] for p in paths], [b_rows[p][2] for p in paths]
    a_pred, b_pred = [int(p >= a_cut) for p in a_prob], [int(p >= b_cut) for p in b_prob]
    a_order = sorted(range(len(paths)), key=a_prob.__getitem__)
    b_order = sorted(range(len(paths)), key=b_prob.__getitem__)

    def gaps(w: list[float]) -> tuple[float, float]:
        return (_weighted_ba(y, b_pred, w) - _weighted_ba(y, a_pred, w),
                _weighted_auc(b_order, y, b_prob, w) - _weighted_auc(a_order, y, a_prob, w))

    point = gaps([1.0] * len(paths))
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        counts = [0] * len(subjects)
        for s in rng.choices(range(len(subjects)), k=len(subjects)):
            counts[s] += 1
        draws.append(gaps([float(counts[o]) for o in owner]))
    cells = [f"{point[i]:+.3f} [{lo:+.3f}, {hi:+.3f}]" for i, (lo, hi) in enumerate(_percentiles([d[i] for d in draws]) for i in (0, 1))]
    name = lambda d: "/".join([d.parent.parent.name, d.parent.name])  # noqa: E731
    return f"| {name(b_dir)} minus {name(a_dir)} | {len(paths)} ({len(subjects)}) | {cells[0]} | {cells[1]} |"


FOLD_METRICS = (("gender BA", "balanced_accuracy"), ("gender ROC-AUC", "roc_auc"), ("age exact", "exact_accuracy"),
                ("age one-off", "one_off_accuracy"))


def _fold_values(report: dict) -> list[float | None]:
    image, age = report["image_level"]["metrics"], report.get("age") or {}
    return [image.get("balanced_accuracy"), image.get("roc_auc"), age.get("exact_accuracy"), age.get("one_off_accuracy")]


def _mean_sd(values: list[float]) -> str:
    """'mean ± sd' (sample standard deviation, n - 1; the mean alone for one value), as Adience papers report over the five folds."""
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def fold_table(report_dirs: list[Path]) -> str:
    """Per-fold test figures (gender at the report's threshold; age groups) and their mean ± sd over the folds."""
    lines = ["| fold | test images (subjects) | threshold | " + " | ".join(name for name, _ in FOLD_METRICS)
             + " | majority baseline BA / age exact |", "|---|---|---|---|---|---|---|---|"]
    columns: list[list[float]] = [[] for _ in FOLD_METRICS]
    for folder in report_dirs:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        values = _fold_values(report)
        for column, value in zip(columns, values):
            if value is not None:
                column.append(value)
        image, base = report["image_level"], report["image_level"]["baseline"]
        age_base = (report.get("age") or {}).get("baseline", {}).get("exact_accuracy")
        cells = " | ".join("n/a" if v is None else f"{v:.3f}" for v in values)
        name = folder.parent.name if folder.name == "report" else folder.name
        lines.append(f"| {name} | {image['n']} ({report['subject_level']['n']}) | {report['threshold']['value']:.3f} "
                     f"| {cells} | {_na(base['balanced_accuracy'])} / {_na(age_base)} |")
    lines.append(f"| mean ± sd ({len(report_dirs)} folds) | | | " + " | ".join(_mean_sd(c) for c in columns) + " | |")
    return "\n".join(lines)


def _na(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


SEEDS_HEADER = (
    "| run | reports | image BA | image ROC-AUC | subject BA | subject ROC-AUC |\n|---|---|---|---|---|---|"
)
SEED_CELLS = (("image_level", "balanced_accuracy"), ("image_level", "roc_auc"),
              ("subject_level", "balanced_accuracy"), ("subject_level", "roc_auc"))


def seeds_rows(report_dirs: list[Path]) -> list[str]:
    """One row per run name: mean ± sample sd of each headline metric over that name's reports (in first-seen order)."""
    groups: dict[str, list[dict]] = {}
    for folder in report_dirs:
        groups.setdefault(_run_name(folder), []).append(json.loads((folder / "report.json").read_text(encoding="utf-8")))
    rows = []
    for name, reports in groups.items():
        cells = []
        for level, metric in SEED_CELLS:
            cells.append(_mean_sd([r[level]["metrics"][metric] for r in reports if r[level]["metrics"].get(metric) is not None]))
        rows.append(f"| {name} | {len(reports)} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--rows", action="store_true", help="summary-table rows instead of sections")
    parser.add_argument("--validation", action="store_true", help="arguments are run folders: validation rows")
    parser.add_argument("--paired", action="store_true", help="pairs of report folders: B minus A with paired CIs")
    parser.add_argument("--folds", action="store_true", help="one report folder per fold: rows and mean ± sd")
    parser.add_argument("--seeds", action="store_true", help="mean ± sd per run name over the reports (e.g. seeds)")
    args = parser.parse_args(argv)
    if args.folds:
        for folder in args.report_dirs:
            if not (folder / "report.json").is_file():
                sys.exit(f"summarize: {folder}/report.json not found: is it a `ugn evaluate` report folder?")
        print(fold_table(args.report_dirs))
        return 0
    if args.paired:
        if len(args.report_dirs) % 2:
            sys.exit("summarize: --paired takes report folders in pairs (A B [A B ...])")
        for folder in args.report_dirs:
            if not (folder / "predictions.csv").is_file() or not (folder / "report.json").is_file():
                sys.exit(f"summarize: {folder} has no predictions.csv/report.json: is it a `ugn evaluate` report folder?")
        print(PAIRED_HEADER)
        for a, b in zip(args.report_dirs[::2], args.report_dirs[1::2]):
            print(paired_row(a, b))
        return 0
    if args.validation:
        for folder in args.report_dirs:
            if not (folder / "history.csv").is_file() or not (folder / "config.yaml").is_file():
                sys.exit(f"summarize: {folder} has no history.csv/config.yaml: is it a `ugn train` run folder?")
        print(VALIDATION_HEADER)
        for folder in args.report_dirs:
            print(validation_row(folder))
        return 0
    for folder in args.report_dirs:
        if not (folder / "report.md").is_file():
            sys.exit(f"summarize: {folder}/report.md not found: is it a `ugn evaluate` report folder?")
    if args.seeds:
        print(SEEDS_HEADER)
        print("\n".join(seeds_rows(args.report_dirs)))
        return 0
    if args.rows:
        print(ROW_HEADER)
        for folder in args.report_dirs:
            print(row(folder))
        return 0
    for folder in args.report_dirs:
        sys.stdout.write(section(folder, args.level))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
