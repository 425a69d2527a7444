"""The main job on the bundled sample: split -> train -> evaluate -> predict, each stage a real `ugn` command.

Each stage runs as its own `ugn` process and is printed first, so the demo doubles as a worked example a
user can copy. Everything lands in one output folder.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

DEMO_TAG = "tf_efficientnet_lite0.in1k_F1_Af_Lb_Z0"
DEMO_ARCH = "umcc"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs on and how long it trains."""

    out: Path
    epochs: int = 6
    image_size: int = 160
    seed: int = 0
    pretrained: str = "default"
    overwrite: bool = False


def run_demo(settings: DemoSettings, console: Console) -> dict:
    """Run every stage; return the summary (also written to OUT/summary.json)."""
    from unifiedgender.sample import sample_manifest_path

    out = settings.out
    if out.exists() and any(out.iterdir()):
        if not settings.overwrite:
            raise UserError(f"{out} already holds a demo run; pass --overwrite to replace it or --output to choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = sample_manifest_path()
    splits, run, report, predict_dir = out / "splits", out / "run", out / "report", out / "predict_folder"
    registry = out / "metrics" / "final_metrics_with_full_configurations.csv"
    timings: dict[str, float] = {}

    console.print(Panel.fit(
        "[bold]unifiedgender demo[/bold] — hands (11K Hands) and faces (LFW) from the bundled sample\n"
        f"model: UMCC with the modality flag on an ImageNet-pretrained EfficientNet-Lite0 ({DEMO_TAG})\n"
        f"output: {out}",
        border_style="cyan",
    ))
    _stage(console, timings, "1/5 data: the bundled sample", ["data", "info", str(manifest)])
    _stage(console, timings, "2/5 split by subject (60/20/20, stratified by gender and modality)",
           ["data", "split", str(manifest), "--ratios", "0.6,0.2,0.2", "--seed", str(settings.seed), "-o", str(splits)])
    _stage(console, timings, "3/5 train UMCC on hands + faces (selection on validation only)", [
        "train", "--tag", DEMO_TAG, "--arch", DEMO_ARCH,
        "--train", str(splits / "train.csv"), "--val", str(splits / "val.csv"),
        "--epochs", str(settings.epochs), "--batch-size", "16", "--lr", "5e-4", "--image-size", str(settings.image_size),
        "--seed", str(settings.seed), "--pretrained", settings.pretrained, "--early-stop-patience", "0",
        "--output", str(run),
    ])
    _stage(console, timings, "4/5 evaluate on held-out subjects (threshold chosen on validation)", [
        "evaluate", str(run / "best.pt"), "--data", str(splits / "test.csv"),
        "--threshold-from", str(run / "val_predictions.csv"), "--output", str(report), "--registry", str(registry),
    ])
    test_faces = _link_test_faces(splits / "test.csv", predict_dir)
    evaluation = json.loads((report / "report.json").read_text())
    threshold = evaluation["threshold"]["value"]
    _stage(console, timings, "5/5 predict a folder of unseen faces (with the validation threshold)", [
        "predict", str(predict_dir), "--checkpoint", str(run / "best.pt"), "--modality", "face",
        "--threshold", f"{threshold:.4f}",
        "-o", str(out / "predictions.csv"), "--annotate", str(out / "annotated"),
        "--contact-sheet", str(out / "contact_sheet.png"),
    ], ok_codes=(0, 1))

    summary = _summarise(evaluation, report, out, run, test_faces, timings)
    with atomic_write(out / "summary.json") as handle:
        handle.write(json.dumps(summary, indent=2))
    _print_summary(console, summary, run)
    return summary


def _stage(console: Console, timings: dict[str, float], title: str, args: list[str], ok_codes: tuple[int, ...] = (0,)) -> None:
    console.rule(f"[bold cyan]{title}")
    console.print(f"[dim]$ ugn {' '.join(shlex.quote(a) for a in args)}[/dim]")
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "unifiedgender", *args], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    timings[title] = time.perf_counter() - start
    if code not in ok_codes:
        raise UserError(f"demo stage '{title}' failed with exit code {code}; see the output above")


def _link_test_faces(test_manifest: Path, folder: Path) -> int:
    """Fill `folder` with links to the test split's face images (subjects the model never saw)."""
    from unifiedgender.data.manifest import read_manifest

    test = read_manifest(test_manifest)
    faces = test[test["modality"] == "face"]
    folder.mkdir(parents=True, exist_ok=True)
    for path in faces["path"]:
        target = folder / Path(path).name
        if not target.exists():
            os.symlink(path, target)
    return len(faces)


def _summarise(report: dict, report_dir: Path, out: Path, run: Path, test_faces: int, timings: dict[str, float]) -> dict:
    return {
        "output": str(out),
        "report": str(report_dir / "report.md"),
        "plots": str(report_dir / "plots"),
        "predictions": str(out / "predictions.csv"),
        "annotated": str(out / "annotated"),
        "contact_sheet": str(out / "contact_sheet.png"),
        "checkpoint": str(run / "best.pt"),
        "predicted_faces": test_faces,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "threshold": report["threshold"],
        "levels": {"image": report["image_level"], "subject": report["subject_level"]},
        "fairness": {
            attribute: {group: {k: entry.get(k) for k in ("n", "balanced_accuracy", "roc_auc")} for group, entry in block["groups"].items()}
            for attribute, block in report["fairness"].items()
        },
    }


def _print_summary(console: Console, summary: dict, run: Path) -> None:
    threshold = summary["threshold"]
    table = Table(title=f"Held-out test subjects (threshold {threshold['value']:.3f}, chosen on {threshold['chosen_on']})")
    for column in ("level", "n", "accuracy", "balanced acc. [95% CI]", "ROC-AUC", "majority-class acc. / BA"):
        table.add_column(column, justify="left" if column == "level" else "right")
    for level, block in summary["levels"].items():
        metrics, ci, baseline = block["metrics"], block.get("ci", {}), block["baseline"]
        table.add_row(level, str(block["n"]), _f(metrics["accuracy"]),
                      f"{_f(metrics['balanced_accuracy'])} {_ci(ci.get('balanced_accuracy'))}", _f(metrics["roc_auc"]),
                      f"{_f(baseline['accuracy'])} / {_f(baseline['balanced_accuracy'])}")
    console.print(table)
    groups = Table(title="Fairness: balanced accuracy by group (image level)")
    for column in ("attribute", "group", "n", "balanced acc.", "ROC-AUC"):
        groups.add_column(column, justify="left" if column in ("attribute", "group") else "right")
    for attribute, block in summary["fairness"].items():
        for group, entry in block.items():
            groups.add_row(attribute, str(group), str(entry["n"]), _f(entry["balanced_accuracy"]), _f(entry["roc_auc"]))
    console.print(groups)
    console.print(Panel.fit(
        f"report      {summary['report']}\n"
        f"plots       {summary['plots']}/*.png\n"
        f"predictions {summary['predictions']}  (contact sheet: {summary['contact_sheet']})\n"
        f"checkpoint  {summary['checkpoint']}\n"
        f"web page    ugn serve {run / 'best.pt'}   then open http://127.0.0.1:8000\n"
        f"total time  {sum(summary['seconds'].values()):.0f} s",
        title="where everything is", border_style="green",
    ))


def _ci(interval: list | None) -> str:
    if not interval or interval[0] is None or interval[1] is None:
        return ""
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _f(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
