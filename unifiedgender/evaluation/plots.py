"""PNG plots of an evaluation: ROC/PR overall and by group, confusion matrix, reliability diagram, per-group
metric bars with CI error bars.

Each plot is its own matplotlib Figure drawn on an Agg canvas: no pyplot, no global backend switch, nothing
left open in the calling program's figure manager.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from unifiedgender.evaluation.fairness import GROUP_METRICS
from unifiedgender.evaluation.metrics import ECE_BINS, ece_bin_index
from unifiedgender.evaluation.table import EvaluationTable


def write_plots(report: dict, table: EvaluationTable, folder: Path) -> dict[str, str]:
    """Write every plot into `folder`; return {plot name: file name}."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    y, probs = table.labels, table.probs
    written["roc_pr"] = _save(_curves({"all": (y, probs)}, "all images"), folder / "roc_pr.png")
    written["confusion_matrix"] = _save(_confusion(report["image_level"]["confusion"]), folder / "confusion_matrix.png")
    written["reliability"] = _save(_reliability(y, probs), folder / "reliability.png")
    for attribute, entry in report["fairness"].items():
        groups = table.frame[f"group_{attribute}"].to_numpy()
        by_group = {str(g): (y[groups == g], probs[groups == g]) for g in sorted(np.unique(groups))}
        written[f"roc_pr_{attribute}"] = _save(_curves(by_group, f"by {attribute}"), folder / f"roc_pr_{attribute}.png")
        written[f"group_metrics_{attribute}"] = _save(
            _group_bars(entry["groups"], attribute), folder / f"group_metrics_{attribute}.png"
        )
    return written


def _figure(**options) -> Figure:
    """A figure with its own Agg canvas (savefig and draw need no backend)."""
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> str:
    figure.savefig(path, dpi=90)
    return path.name


def _curves(series: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    figure = _figure(figsize=(10, 4.5))
    roc_ax, pr_ax = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, wspace=0.25)
    for name, (y, probs) in series.items():
        if len(np.unique(y)) < 2:  # a curve needs both classes: the group is named in the legend, not dropped
            for ax in (roc_ax, pr_ax):
                ax.plot([], [], " ", label=f"{name}: one class only, no curve (n={len(y)})")
            continue
        fpr, tpr, _ = roc_curve(y, probs)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f}, n={len(y)})")
        precision, recall, _ = precision_recall_curve(y, probs)
        pr_ax.plot(recall, precision, label=f"{name} (n={len(y)})")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc_ax.set(xlabel="false positive rate (female called male)", ylabel="true positive rate (male)", title=f"ROC, {title}")
    pr_ax.set(xlabel="recall (male)", ylabel="precision (male)", title=f"Precision-recall, {title}")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "lower left")
    return figure


def _confusion(cells: dict[str, int]) -> Figure:
    matrix = np.array([[cells["tn"], cells["fp"]], [cells["fn"], cells["tp"]]])
    figure = _figure(figsize=(4, 3.6))
    ax = figure.subplots()
    figure.subplots_adjust(left=0.2, bottom=0.15)
    ax.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["female", "male"])
    ax.set_yticks([0, 1], ["female", "male"])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    return figure


def _reliability(y: np.ndarray, probs: np.ndarray) -> Figure:
    """Observed male rate per bin of predicted P(male), each point labelled with its image count, and the counts
    as a histogram below (a point from 3 images is not the evidence a point from 300 is)."""
    edges = np.linspace(0, 1, ECE_BINS + 1)
    which = ece_bin_index(probs)
    counts = np.bincount(which, minlength=ECE_BINS)
    used = counts > 0
    observed = np.array([y[which == b].mean() for b in np.flatnonzero(used)])
    predicted = np.array([probs[which == b].mean() for b in np.flatnonzero(used)])
    figure = _figure(figsize=(4.8, 5.6))
    ax, hist = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    figure.subplots_adjust(left=0.15, bottom=0.1, top=0.93, hspace=0.08)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    ax.plot(predicted, observed, marker="o", label="model")
    for x, y_value, n in zip(predicted, observed, counts[used]):
        ax.annotate(str(n), (x, y_value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set(ylabel="observed male rate", title="Reliability diagram (labels: images per bin)", xlim=(0, 1), ylim=(0, 1.08))
    ax.legend(fontsize=8, loc="upper left")
    hist.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / ECE_BINS * 0.9, color="tab:blue", alpha=0.6)
    hist.set(xlabel="mean predicted P(male)", ylabel="images")
    return figure


def _group_bars(groups: dict[str, dict], attribute: str) -> Figure:
    """Metric bars with CI error bars per group; the legend sits outside the axes, a group whose metric is
    undefined shows "n/a" where its bar would be, a group too small for intervals is hatched, without error
    bars, and the x labels give images, subjects and "too small"."""
    names = list(groups)
    figure = _figure(figsize=(max(6, 1.2 * len(names) * len(GROUP_METRICS) / 3) + 1.8, 4.2))
    ax = figure.subplots()
    figure.subplots_adjust(left=0.08, right=0.8, bottom=0.2)
    width = 0.8 / len(GROUP_METRICS)
    x = np.arange(len(names))
    for i, metric in enumerate(GROUP_METRICS):
        values = np.array([_nan(groups[g][metric]) for g in names])
        lows = np.array([_nan((groups[g][f"{metric}_ci"] or [None, None])[0]) for g in names])
        highs = np.array([_nan((groups[g][f"{metric}_ci"] or [None, None])[1]) for g in names])
        errors = np.clip(np.vstack([values - lows, highs - values]), 0, None)  # NaN (no interval): no error bar
        position = x + (i - (len(GROUP_METRICS) - 1) / 2) * width
        bars = ax.bar(position, np.nan_to_num(values), width, yerr=errors, capsize=2, label=metric)
        for bar, name in zip(bars, names):
            if groups[name].get("too_small"):
                bar.set(alpha=0.45, hatch="//")
        for where in np.flatnonzero(np.isnan(values)):
            ax.text(position[where], 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="dimgrey")
    labels = [f"{g}\n{groups[g]['n']} img, {groups[g].get('n_subjects', '?')} subj"
              + ("\ntoo small" if groups[g].get("too_small") else "") for g in names]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="value (95% CI)", title=f"Metrics by {attribute}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
