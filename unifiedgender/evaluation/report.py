"""Write an evaluation folder atomically: predictions.csv, report.json, report.md and the PNG plots."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from unifiedgender.decision import Threshold
from unifiedgender.errors import UserError
from unifiedgender.evaluation.fairness import GROUP_METRICS
from unifiedgender.evaluation.metrics import METRIC_NAMES
from unifiedgender.evaluation.plots import write_plots
from unifiedgender.evaluation.table import EvaluationTable


def write_report_folder(
    report: dict, table: EvaluationTable, predictions: pd.DataFrame, out: Path, overwrite: bool = False, plots: bool = True
) -> Path:
    """Build the folder beside `out` and move it into place; refuse an existing `out` unless `overwrite`."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        predictions.to_csv(building / "predictions.csv", index=False)
        written = write_plots(report, table, building / "plots") if plots else {}
        report["plots"] = {name: f"plots/{file}" for name, file in written.items()}
        (building / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        (building / "report.md").write_text(render_markdown(report), encoding="utf-8")
        _replace_folder(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Rename `new` onto `out`; an existing `out` is moved aside first and removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{new.name}")
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_ci(ci: list | None) -> str:
    if not ci or ci[0] is None:
        return "n/a"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def render_markdown(report: dict) -> str:
    """A human-readable report.md referencing the plots."""
    data, threshold, boot = report["data"], report["threshold"], report["bootstrap"]
    lines = [
        "# Evaluation report",
        "",
        f"- Source: `{data['source']}`; created {report['created']}",
        f"- Rows evaluated: {data['n_evaluated']} of {data['n_rows']} ({data['n_subjects']} subjects); "
        f"excluded: {data['n_excluded']}" + (f" ({_reasons(data['excluded'])})" if data["excluded"] else ""),
        f"- Modalities: {', '.join(f'{k} {v}' for k, v in data['modalities'].items())}; "
        f"classes: male {data['class_counts']['male']}, female {data['class_counts']['female']}",
        f"- Threshold on P(male): {Threshold(**threshold).describe()}",
        f"- 95% CIs: percentile bootstrap over {boot['unit']}s, {boot['n_resamples']} resamples, seed {boot['seed']}",
        *_calibration_lines(report),
        "",
        "## Metrics",
        "",
        "| metric | image-level | 95% CI | subject-level | 95% CI |",
        "|---|---|---|---|---|",
    ]
    image, subject = report["image_level"], report["subject_level"]
    for name in METRIC_NAMES:
        lines.append(
            f"| {name} | {_fmt(image['metrics'][name])} | {_fmt_ci(image['ci'].get(name))} | "
            f"{_fmt(subject['metrics'][name])} | {_fmt_ci(subject['ci'].get(name))} |"
        )
        if name == "balanced_accuracy":
            half = image["at_0.5"], subject["at_0.5"]
            lines.append("| balanced_accuracy at 0.5 | " + " | ".join(
                f"{_fmt(h['balanced_accuracy'])} | {_fmt_ci(h['balanced_accuracy_ci'])}" for h in half) + " |")
    for level_name, level in (("image", image), ("subject", subject)):
        base = level["baseline"]
        lines.append(
            f"| majority-class baseline ({level_name}s; always '{base['majority_class']}', from {base['majority_class_from']}) "
            f"| accuracy {_fmt(base['accuracy'])} | | balanced accuracy {_fmt(base['balanced_accuracy'])} | |"
        )
    cells = image["confusion"]
    lines += [
        "",
        "## Confusion matrix (images)",
        "",
        "| true \\ predicted | female | male |",
        "|---|---|---|",
        f"| female | {cells['tn']} | {cells['fp']} |",
        f"| male | {cells['fn']} | {cells['tp']} |",
        "",
    ]
    plots = report.get("plots", {})
    for key, title in (("roc_pr", "ROC and precision-recall"), ("confusion_matrix", "Confusion matrix"), ("reliability", "Reliability diagram")):
        if key in plots:
            lines += [f"![{title}]({plots[key]})", ""]
    lines += ["## Fairness", ""]
    for attribute, entry in report["fairness"].items():
        lines += [
            f"### By {attribute}",
            "",
            f"Demographic parity difference {_fmt(entry['demographic_parity_difference'])}; "
            f"equalized odds difference {_fmt(entry['equalized_odds_difference'])}"
            + (f" (over the groups holding both classes; left out: {', '.join(entry['equalized_odds_excluded_groups'])})"
               if entry["equalized_odds_excluded_groups"] else "") + ".",
            "",
            "| group | n | subjects | " + " | ".join(GROUP_METRICS) + " |",
            "|---|---|---|" + "---|" * len(GROUP_METRICS),
        ]
        for group, values in entry["groups"].items():
            cells_text = " | ".join(
                _fmt(values[m]) + ("" if values[m] is None else f" {_fmt_ci(values[f'{m}_ci'])}") for m in GROUP_METRICS
            )
            lines.append(f"| {group} | {values['n']} | {values['n_subjects']} | {cells_text} |")
        gap_ci = entry.get("difference_ci") or {}
        lines.append(
            "| difference (max - min) | | | "
            + " | ".join(_fmt(entry["difference"][m]) + (f" {_fmt_ci(gap_ci[m])}" if gap_ci.get(m) else "") for m in GROUP_METRICS)
            + " |"
        )
        lines.append("| ratio (min / max) | | | " + " | ".join(_fmt(entry["ratio"][m]) for m in GROUP_METRICS) + " |")
        lines.append("")
        thresholds = entry.get("per_group_thresholds")
        if thresholds:
            chosen = ", ".join(f"{g} {_fmt(t)}" for g, t in thresholds["thresholds"].items())
            lines += [
                f"Per-group thresholds ({thresholds['method']}, chosen on {thresholds['chosen_on']}; "
                f"NOT applied to any figure above): {chosen}",
                "",
            ]
        for key in (f"roc_pr_{attribute}", f"group_metrics_{attribute}"):
            if key in plots:
                lines += [f"![{key}]({plots[key]})", ""]
    return "\n".join(lines) + "\n"


def _calibration_lines(report: dict) -> list[str]:
    """Temperature and ECE before/after, and the shift warning, when the evaluated model stores a decision."""
    lines = []
    calibration = report.get("calibration")
    if calibration:
        lines.append(
            f"- Calibration: temperature {calibration['temperature']:.3f} (fitted on {calibration['fitted_on']}); "
            f"ECE here {_fmt(calibration['ece_uncalibrated'])} uncalibrated -> {_fmt(calibration['ece_calibrated'])} calibrated"
        )
    shift = report.get("shift")
    if shift and shift["shifted"]:
        lines.append(f"- **Shift:** {shift['message'].removeprefix('warning: ')}")
    return lines


def _reasons(excluded: dict[str, int]) -> str:
    return "; ".join(f"{reason}: {count}" for reason, count in excluded.items())
