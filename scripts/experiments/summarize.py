"""Print an evaluation report folder (report.md written by `ugn evaluate`) as a docs section (stdlib only).

Usage: summarize.py REPORT_DIR [--level N]
       summarize.py REPORT_DIR [REPORT_DIR ...] --rows   (one summary-table row per report, from report.json)

Keeps the report's header lines, its metrics and confusion-matrix tables and its fairness tables; drops the
embedded plots (results.md does not commit PNGs) and shifts the headings down by N levels (default 2).
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--rows", action="store_true", help="summary-table rows instead of sections")
    args = parser.parse_args(argv)
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
