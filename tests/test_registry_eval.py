"""The run registry: appends under concurrent writers, a growing column set, UnifiedGenderNet's CSV layout."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest

from unifiedgender.errors import UserError
from unifiedgender.evaluation.runlog import append_run, best_runs, parse_configuration, read_registry

ROWS_PER_WRITER = 25


def _writer(path: str, writer: int, barrier) -> None:
    barrier.wait()  # both processes start appending at the same moment
    for i in range(ROWS_PER_WRITER):
        row = {"tag": f"w{writer}-{i}", "balanced_accuracy": 0.5 + i / 100, "configuration": {"writer": writer, "i": i}}
        row[f"only_writer_{writer}"] = f"value {writer},{i}"  # each writer adds a column the other lacks
        append_run(path, row)


def test_two_concurrent_processes_lose_and_corrupt_nothing(tmp_path):
    path = tmp_path / "metrics" / "final_metrics_with_full_configurations.csv"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(str(path), w, barrier)) for w in (0, 1)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(df) == 2 * ROWS_PER_WRITER
    assert sorted(df["tag"]) == sorted(f"w{w}-{i}" for w in (0, 1) for i in range(ROWS_PER_WRITER))
    for _, row in df.iterrows():
        writer, i = (int(x) for x in row["tag"][1:].split("-"))
        assert row[f"only_writer_{writer}"] == f"value {writer},{i}"
        assert row[f"only_writer_{1 - writer}"] == ""
        assert parse_configuration(row["configuration"]) == {"writer": writer, "i": i}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]  # no temporary files left


def test_column_set_grows_and_old_rows_keep_their_cells(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(path, {"tag": "a", "accuracy": 0.9})
    append_run(path, {"tag": "b", "accuracy": 0.8, "roc_auc": 0.95, "note": 'comma, "quote"'})
    append_run(path, {"tag": "c", "roc_auc": None})
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["tag", "accuracy", "roc_auc", "note"]
    assert df.to_dict("records") == [
        {"tag": "a", "accuracy": "0.9", "roc_auc": "", "note": ""},
        {"tag": "b", "accuracy": "0.8", "roc_auc": "0.95", "note": 'comma, "quote"'},
        {"tag": "c", "accuracy": "", "roc_auc": "", "note": ""},
    ]


UGN_CSV = """tag,arch,category,configuration,test_modality,accuracy,bal_acc,roc_auc
tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0,umcc,baseline,"{'backbone': 'tf_efficientnetv2_s.in1k', 'flag_on': False, 'mean_acc': 0.912, 'loss': 'focal'}",face,0.915,0.911,0.97
tf_efficientnetv2_s.in1k_F1_Af_Lb_Z0,umcc,ablation,"{'backbone': 'tf_efficientnetv2_s.in1k', 'flag_on': True, 'mean_acc': 0.884, 'loss': 'bce'}",hand,0.881,0.874,0.94
tf_efficientnetv2_s.in1k_F0_An_Lb_Z1,mag,ablation,"{'backbone': 'tf_efficientnetv2_s.in1k', 'flag_on': False, 'mean_acc': 0.901, 'loss': 'bce'}",hand,0.905,0.893,0.95
resnet50.a1_in1k_F0_Af_Lw_Z2,umcc,ablation,"{'flag_on': False, 'mean_acc': 0.79, 'evil': __import__('os').system('touch PWNED')}",face,0.80,0.79,0.86
"""


@pytest.fixture
def ugn_registry(tmp_path) -> Path:
    path = tmp_path / "final_metrics_with_full_configurations.csv"
    path.write_text(UGN_CSV, encoding="utf-8")
    return path


def test_reads_the_unifiedgendernet_layout(ugn_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = read_registry(ugn_registry)
    assert df["balanced_accuracy"].tolist() == [0.911, 0.874, 0.893, 0.79]  # bal_acc resolved
    assert df["modality"].tolist() == ["face", "hand", "hand", "face"]  # test_modality resolved
    assert df["mean_acc"].tolist()[:3] == [0.912, 0.884, 0.901]  # configuration keys become columns
    assert df["flag_on"].tolist()[:3] == ["False", "True", "False"]
    assert pd.isna(df["mean_acc"].iloc[3])  # code in a configuration is never evaluated: the cell is ignored
    assert not (tmp_path / "PWNED").exists()
    top = best_runs(df, sort="mean_acc", k=2, category="ablation")
    assert top["tag"].tolist() == ["tf_efficientnetv2_s.in1k_F0_An_Lb_Z1", "tf_efficientnetv2_s.in1k_F1_Af_Lb_Z0"]
    assert best_runs(df, arch="mag")["arch"].tolist() == ["mag"]
    assert best_runs(df, modality="hand", sort="bal_acc")["balanced_accuracy"].tolist() == [0.893, 0.874]


def test_our_rows_can_be_appended_to_a_published_file(ugn_registry):
    append_run(ugn_registry, {"tag": "resnet18.a1_in1k_F0_An_Lb_Z0", "arch": "classifier", "balanced_accuracy": 0.95,
                              "configuration": {"epochs": 1}})
    df = read_registry(ugn_registry)
    assert len(df) == 5
    assert df.loc[4, "epochs"] == 1 and df.loc[4, "balanced_accuracy"] == 0.95  # our metric and configuration
    assert df.loc[0, "balanced_accuracy"] == 0.911  # their rows still readable, with their short names


def test_parse_configuration_json_or_python_literal_only():
    assert parse_configuration('{"a": 1, "b": true}') == {"a": 1, "b": True}
    assert parse_configuration("{'a': 1, 'b': True, 'c': None}") == {"a": 1, "b": True, "c": None}
    assert parse_configuration("__import__('os').getcwd()") == {}
    assert parse_configuration("[1, 2]") == {}
    assert parse_configuration("") == {}


def test_registry_errors_name_the_fix(tmp_path, ugn_registry):
    with pytest.raises(UserError, match="run registry not found: .*pass --registry"):
        read_registry(tmp_path / "missing.csv")
    df = read_registry(ugn_registry)
    with pytest.raises(UserError, match="--sort 'f2': no such column in the registry; numeric columns: .*roc_auc"):
        best_runs(df, sort="f2")
    with pytest.raises(UserError, match="--sort 'tag': the column is not numeric"):
        best_runs(df, sort="tag")
    with pytest.raises(UserError, match="none of the columns test_dataset, train_dataset, dataset"):
        best_runs(df, dataset="socofing")


def test_a_stale_lock_times_out_with_a_clear_message(tmp_path, monkeypatch):
    from filelock import FileLock

    from unifiedgender.evaluation import runlog

    path = tmp_path / "runs.csv"
    monkeypatch.setattr(runlog, "LOCK_TIMEOUT_S", 0.2)
    holder = FileLock(f"{path}.lock")
    with holder:  # held by this process: another FileLock object on the same file waits and times out
        with pytest.raises(UserError, match=r"locked by another writer .*remove .*runs.csv.lock"):
            append_run(path, {"tag": "x"})
    assert not path.exists()
    assert os.path.exists(f"{path}.lock")


def test_ugn_runs_prints_the_best_published_runs(ugn_registry, monkeypatch, capsys):
    import sys

    from unifiedgender.cli.app import main

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(sys, "argv", ["ugn", "runs", "--registry", str(ugn_registry), "--category", "ablation",
                                      "--sort", "mean_acc", "-k", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "Best 1 of 4 runs by mean_acc" in out
    assert "tf_efficientnetv2_s.in1k_F0_An_Lb_Z1" in out and "0.9010" in out
    assert "F1_Af_Lb_Z0" not in out  # ranked second: not shown with -k 1


def _runs_output(monkeypatch, capsys, *args: str) -> str:
    import sys

    from unifiedgender.cli.app import main

    monkeypatch.delenv("COLUMNS", raising=False)  # piped, as `ugn runs | cat` or a Slurm log
    monkeypatch.setattr(sys, "argv", ["ugn", "runs", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_ugn_runs_piped_prints_whole_headers_and_a_readable_column_set(tmp_path, monkeypatch, capsys):
    path = tmp_path / "registry.csv"
    for i in range(3):
        append_run(path, {"date": f"2026-11-0{i + 1}", "tag": f"tf_efficientnet_lite0.in1k_F0_Af_Lb_Z0_seed{i}",
                          "arch": "classifier", "category": "evaluation", "modality": "hand",
                          "test_dataset": "11k_hands/test.csv", "n_subjects": 30, "accuracy": 0.8 + i / 100,
                          "balanced_accuracy": 0.7 + i / 100, "balanced_accuracy_ci_low": 0.6,
                          "balanced_accuracy_ci_high": 0.9, "roc_auc": 0.85, "threshold": 0.47,
                          "configuration": '{"lr": 0.001}', "subject_roc_auc_ci_high": 0.99})
    out = _runs_output(monkeypatch, capsys, "--registry", str(path))
    header = next(line for line in out.splitlines() if " tag " in line)
    for name in ("tag", "arch", "modality", "test_dataset", "n_subjects", "balanced_accuracy [95% CI]", "date"):
        assert f" {name} " in header, header
    assert "configuration" not in out and "subject_roc_auc_ci_high" not in out
    assert "0.7200 [0.600, 0.900]" in out and "tf_efficientnet_lite0.in1k_F0_Af_Lb_Z0_seed2" in out
    assert max(len(line) for line in out.splitlines()) > 80  # not cut to 80 columns

    as_csv = _runs_output(monkeypatch, capsys, "--registry", str(path), "--format", "csv", "-k", "2")
    frame = pd.read_csv(io.StringIO(as_csv))
    assert frame["tag"].tolist() == [f"tf_efficientnet_lite0.in1k_F0_Af_Lb_Z0_seed{i}" for i in (2, 1)]
    assert "configuration" in frame.columns  # csv and json carry every column
    records = json.loads(_runs_output(monkeypatch, capsys, "--registry", str(path), "--format", "json",
                                      "--columns", "tag,bal_acc"))
    assert records[0] == {"tag": "tf_efficientnet_lite0.in1k_F0_Af_Lb_Z0_seed2", "balanced_accuracy": 0.72}
