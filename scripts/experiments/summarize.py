"""Print an evaluation report folder (report.md written by `ugn evaluate`) as a docs section (stdlib only).

Usage: summarize.py REPORT_DIR [--level N]

Keeps the report's header lines, its metrics and confusion-matrix tables and its fairness tables; drops the
embedded plots (results.md does not commit PNGs) and shifts the headings down by N levels (default 2).
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--level", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.report_dir / "report.md").is_file():
        sys.exit(f"summarize: {args.report_dir}/report.md not found: is it a `ugn evaluate` report folder?")
    sys.stdout.write(section(args.report_dir, args.level))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
