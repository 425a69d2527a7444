"""Print an evaluation report folder (report.md written by `ugn evaluate`) as a docs section (stdlib only).

Usage: summarize.py REPORT_DIR [--level N]
       summarize.py REPORT_DIR [REPORT_DIR ...] --rows   (one summary-table row per report, from report.json)
       summarize.py RUN_DIR [RUN_DIR ...] --validation   (one row per training run: what validation saw)

Keeps the report's header lines, its metrics and confusion-matrix tables and its fairness tables; drops the
embedded plots (results.md does not commit PNGs) and shifts the headings down by N levels (default 2).
"""

from __future__ import annotations

import argparse
import csv
import json
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


def row(report_dir: Path) -> str:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    image, subject = report["image_level"], report["subject_level"]
    base = image["baseline"]
    name = "/".join([report_dir.parent.parent.name, report_dir.parent.name]
                    + ([report_dir.name] if report_dir.name != "report" else []))
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--rows", action="store_true", help="summary-table rows instead of sections")
    parser.add_argument("--validation", action="store_true", help="arguments are run folders: validation rows")
    args = parser.parse_args(argv)
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
