"""`ugn bench train` runs on CPU and reports the three paths and their ratios (no timing assertions)."""

from typer.testing import CliRunner

from test_train_support import TINY
from unifiedgender.cli.app import app


def test_bench_train_runs_on_cpu():
    args = ["bench", "train", "--device", "cpu", "--backbone", TINY, "--batch-size", "4", "--image-size", "32",
            "--steps", "1", "--workers", "0", "--source-size", "64", "--rounds", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for label in ("(a) synthetic tensors", "(b) decoded cache", "(c) PIL + DataLoader, 0 workers", "b/a = ", "b/c = "):
        assert label in result.output


def test_bench_report_structure():
    from unifiedgender.training.bench import run_train_bench

    report = run_train_bench("simple_cnn", "simple_cnn", 4, 24, 1, "cpu", "fp32", 0, warmup=1, rounds=2, source_size=48, log=lambda m: None)
    assert [r["name"] for r in report["results"]] == ["synthetic", "project", "pil"]
    assert all(r["images_per_s"] > 0 and r["images"] == 4 for r in report["results"])
    rates = {r["name"]: r["images_per_s"] for r in report["results"]}
    assert abs(report["ratio_project_vs_pil"] - rates["project"] / rates["pil"]) < 1e-9
