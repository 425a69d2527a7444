"""Group metrics checked by hand, unknown groups kept, age buckets, per-group thresholds never applied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from unifiedgender.errors import UserError
from unifiedgender.evaluation.assess import evaluate_predictions
from unifiedgender.data.ages import parse_report_age_edges
from unifiedgender.evaluation.table import group_values, prepare_table, subject_level

REPO = Path(__file__).resolve().parents[1]


def hand_checked_table() -> pd.DataFrame:
    """hand: (M .8) (M .3) (F .2) (F .6) -> tp1 fn1 tn1 fp1; face: (M .9) (M .7) (F .1) (F .55) -> tp2 tn1 fp1.

    Race is missing for two rows (they must form the group "unknown"); one corrupt row must be excluded.
    """
    rows = [
        ("h1", "hand", "male", 0.8, "a", 25),
        ("h2", "hand", "male", 0.3, "a", 40),
        ("h3", "hand", "female", 0.2, "b", 70),
        ("h4", "hand", "female", 0.6, None, 12),
        ("f1", "face", "male", 0.9, "b", 33),
        ("f2", "face", "male", 0.7, None, None),
        ("f3", "face", "female", 0.1, "a", 19),
        ("f4", "face", "female", 0.55, "b", 50),
    ]
    df = pd.DataFrame(rows, columns=["subject_id", "modality", "gender", "prob_male", "race", "age"])
    df["path"] = [f"/img/{s}.png" for s in df["subject_id"]]
    df["status"] = "ok"
    corrupt = {"path": "/img/bad.png", "subject_id": "x", "modality": "hand", "gender": "male", "prob_male": None,
               "race": "a", "age": 30, "status": "unreadable image: truncated"}
    return pd.concat([df, pd.DataFrame([corrupt])], ignore_index=True)


@pytest.fixture(scope="module")
def report() -> dict:
    return evaluate_predictions(hand_checked_table(), n_resamples=50, seed=0)[0]


def test_group_metrics_by_hand(report):
    modality = report["fairness"]["modality"]
    hand, face = modality["groups"]["hand"], modality["groups"]["face"]
    assert (hand["n"], hand["accuracy"], hand["tpr"], hand["fpr"], hand["selection_rate"]) == (4, 0.5, 0.5, 0.5, 0.5)
    assert (face["n"], face["accuracy"], face["tpr"], face["fpr"], face["selection_rate"]) == (4, 0.75, 1.0, 0.5, 0.75)
    assert hand["balanced_accuracy"] == pytest.approx(0.5)
    assert face["balanced_accuracy"] == pytest.approx(0.75)
    assert face["roc_auc"] == pytest.approx(1.0)  # every male above every female
    # hand pairs (male, female): (.8,.2) (.8,.6) (.3,.2) won, (.3,.6) lost
    assert hand["roc_auc"] == pytest.approx(3 / 4)


def test_gaps_and_fairlearn_differences_by_hand(report):
    modality = report["fairness"]["modality"]
    assert modality["difference"]["balanced_accuracy"] == pytest.approx(0.25)
    assert modality["ratio"]["balanced_accuracy"] == pytest.approx(0.5 / 0.75)
    assert modality["difference"]["selection_rate"] == pytest.approx(0.25)
    # demographic parity: selection rates .5 vs .75; equalized odds: max(TPR gap .5, FPR gap 0)
    assert modality["demographic_parity_difference"] == pytest.approx(0.25)
    assert modality["equalized_odds_difference"] == pytest.approx(0.5)
    # by gender, TPR exists for males only and FPR for females only: no gap can be computed
    gender = report["fairness"]["gender"]
    assert gender["groups"]["male"]["tpr"] == pytest.approx(3 / 4) and gender["groups"]["female"]["tpr"] is None
    assert gender["difference"]["tpr"] is None and gender["difference"]["fpr"] is None
    assert gender["difference"]["selection_rate"] == pytest.approx(3 / 4 - 2 / 4)
    # fairlearn would count the missing rates as 0; equalized odds is undefined here, and says why
    assert gender["equalized_odds_difference"] is None
    assert gender["equalized_odds_excluded_groups"] == ["female", "male"]
    assert modality["equalized_odds_excluded_groups"] == []
    one_group = evaluate_predictions(hand_checked_table().assign(modality="hand"), n_resamples=0)[0]["fairness"]["modality"]
    assert one_group["demographic_parity_difference"] is None and one_group["difference"]["accuracy"] is None


def test_equalized_odds_leaves_out_one_class_groups():
    df = hand_checked_table()
    # race a = h1, h2, f3; b = h3, f1, f4; c = h4, f2 (relabelled female below: c holds no male)
    df["race"] = ["a", "a", "b", "c", "b", "c", "a", "b", "a"]
    df.loc[5, "gender"] = "female"  # f2 (prob .7): group c now holds two females only
    report, _ = evaluate_predictions(df, n_resamples=0)
    race = report["fairness"]["race"]
    assert race["equalized_odds_excluded_groups"] == ["c"]
    # a: h1 .8 M tp, h2 .3 M fn, f3 .1 F tn -> TPR 1/2, FPR 0; b: f1 .9 M tp, h3 .2 F tn, f4 .55 F fp -> TPR 1, FPR 1/2
    assert race["equalized_odds_difference"] == pytest.approx(0.5)
    assert race["groups"]["c"]["fpr"] == pytest.approx(1.0) and race["groups"]["c"]["tpr"] is None


def test_every_group_has_a_ci_around_its_value(report, monkeypatch):
    assert all(v["too_small"] and v["accuracy_ci"] is None  # 1-4 subjects per group here: too few for intervals
               for entry in report["fairness"].values() for v in entry["groups"].values())
    monkeypatch.setattr("unifiedgender.evaluation.fairness.MIN_CI_SUBJECTS", 1)
    with_intervals = evaluate_predictions(hand_checked_table(), n_resamples=50, seed=0)[0]
    for attribute, entry in with_intervals["fairness"].items():
        for group, values in entry["groups"].items():
            for metric in ("accuracy", "selection_rate"):
                low, high = values[f"{metric}_ci"]
                assert low <= values[metric] <= high, (attribute, group, metric)


def test_missing_attribute_forms_an_unknown_group(report):
    race = report["fairness"]["race"]["groups"]
    assert race["unknown"]["n"] == 2
    assert sum(g["n"] for g in race.values()) == 8  # nothing dropped (the corrupt row is excluded, and counted)
    age = report["fairness"]["age"]["groups"]
    assert age["unknown"]["n"] == 1
    assert report["data"]["excluded"] == {"unreadable image: truncated": 1}
    assert report["data"]["n_evaluated"] == 8


def test_age_buckets_are_configurable():
    ages = pd.Series([5, 18, 29, 30, 61, None, -3])
    labels = list(group_values(ages, "age", parse_report_age_edges("0,18,30,45,60")))
    assert labels == ["0-17", "18-29", "18-29", "30-44", "60+", "unknown", "unknown"]
    assert list(group_values(ages, "age", parse_report_age_edges("0,40"))) == ["0-39"] * 4 + ["40+", "unknown", "unknown"]
    assert list(group_values(ages, "age", (0, 12.5))) == ["0-<12.5", "12.5+", "12.5+", "12.5+", "12.5+", "unknown", "unknown"]
    with pytest.raises(UserError, match="ascending"):
        parse_report_age_edges("30,18")
    with pytest.raises(UserError, match="comma-separated"):
        parse_report_age_edges("young,old")


def test_numeric_codes_with_blanks_group_as_integers():
    df = hand_checked_table()
    df["skin"] = [1, 2, None, 6, 6, 1, 2, None, 1]
    groups = prepare_table(df).frame["group_skin"].tolist()
    assert groups == ["1", "2", "unknown", "6", "6", "1", "2", "unknown"]


def test_text_age_groups_are_kept_as_they_are():
    df = hand_checked_table()
    df["age"] = ["18-29", "30-39", None, "18-29", "18-29", "30-39", "40+", "40+", "40+"]
    table = prepare_table(df)
    assert sorted(table.frame["group_age"].unique()) == ["18-29", "30-39", "40+", "unknown"]


def test_per_group_thresholds_are_reported_not_applied(report):
    thresholds = report["fairness"]["modality"]["per_group_thresholds"]
    assert thresholds["applied"] is False
    assert "optimistic" in thresholds["chosen_on"]
    assert thresholds["thresholds"]["face"] is not None
    # the headline figures still use the global 0.5
    assert report["threshold"] == {"value": 0.5, "method": "fixed", "chosen_on": "given"}
    assert report["image_level"]["metrics"]["accuracy"] == pytest.approx(5 / 8)


def test_subject_level_uses_mean_probability_per_subject():
    df = pd.DataFrame(
        {
            "subject_id": ["s1", "s1", "s1", "s2", "s2"],
            "modality": ["fingerprint"] * 5,
            "gender": ["male"] * 3 + ["female"] * 2,
            "prob_male": [0.2, 0.3, 0.9, 0.4, 0.8],
            "status": ["ok"] * 5,
        }
    )
    subjects = subject_level(prepare_table(df)).frame.set_index("subject_id")
    assert subjects.loc["s1", "prob_male"] == pytest.approx(1.4 / 3)
    assert subjects.loc["s2", "prob_male"] == pytest.approx(0.6)
    assert list(subjects["n_images"]) == [3, 2]
    mixed = df.assign(gender=["male", "female", "male", "female", "female"])
    assert subject_level(prepare_table(mixed)).subjects_with_mixed_labels == 1
    report, _ = evaluate_predictions(df, n_resamples=0)
    assert report["subject_level"]["metrics"]["accuracy"] == 0.0  # s1 -> female, s2 -> male: both wrong
    assert report["image_level"]["metrics"]["accuracy"] == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns="prob_male"), "missing column 'prob_male'"),
        (lambda df: df.assign(prob_male=[1.5] + [0.5] * (len(df) - 1)), "row 2: prob_male '1.5' is not a probability"),
        (lambda df: df.assign(gender=["M"] + ["male"] * (len(df) - 1)), "gender 'M' is not one of female, male"),
        (lambda df: df.assign(status="unreadable"), "no rows with status 'ok'"),
        (lambda df: df.assign(subject_id=["s"] * (len(df) - 1) + [None]), "row 10: empty subject_id"),
        # one image twice (a second spelling of its path) would count twice: issue 12, item 2
        (lambda df: df.assign(path=[*df["path"][:-1], "/img/./h1.png"]), r"row 10: '/img/\./h1.png' is the same file as row 2"),
    ],
)
def test_bad_tables_are_refused_with_the_fix(change, message):
    with pytest.raises(UserError, match=message):
        prepare_table(change(hand_checked_table()))


def test_missing_truth_is_excluded_and_counted():
    df = hand_checked_table()
    df.loc[0, "gender"] = np.nan
    table = prepare_table(df)
    assert table.excluded == {"unreadable image: truncated": 1, "no ground-truth gender": 1}
    assert len(table.frame) == 7


def test_gap_interval_resamples_subjects_jointly_as_sklearn_with_weights():
    """Each replicate: metric(best group) - metric(worst group) with the same subject draw; checked with sklearn."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from unifiedgender.evaluation.bootstrap import gap_intervals, resample_counts

    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(40), 3)
    y = (subjects % 2).astype(int)
    groups = np.where(subjects < 24, "big", "small")
    probs = np.clip(0.5 + (y - 0.5) * np.where(groups == "big", 0.6, 0.2) + rng.normal(0, 0.25, len(y)), 0.01, 0.99)
    pairs = {"balanced_accuracy": ("big", "small"), "roc_auc": ("big", "small")}
    got = gap_intervals(y, probs, subjects, groups, pairs, threshold=0.5, n_resamples=200, seed=5)
    _, index = np.unique(subjects.astype(str), return_inverse=True)
    weights = resample_counts(40, 200, 5, n_images=len(y))[:, index]
    pred = (probs >= 0.5).astype(int)
    for name, score in (("balanced_accuracy", lambda m, w: balanced_accuracy_score(y[m], pred[m], sample_weight=w)),
                        ("roc_auc", lambda m, w: roc_auc_score(y[m], probs[m], sample_weight=w))):
        gaps = []
        for w in weights:
            big, small = (groups == "big") & (w > 0), (groups == "small") & (w > 0)
            if len(set(y[big])) == 2 and len(set(y[small])) == 2:
                gaps.append(score(big, w[big]) - score(small, w[small]))
        assert got[name] == pytest.approx(tuple(np.percentile(gaps, [2.5, 97.5])))
    assert got["balanced_accuracy"][0] > 0  # the big group's clearly better scores: the gap excludes 0


def test_report_names_the_groups_of_each_gap_and_gives_no_interval_for_tiny_groups(report):
    modality = report["fairness"]["modality"]
    assert modality["difference_groups"] == {}  # 4 subjects per modality: below MIN_CI_SUBJECTS
    assert modality["difference"]["balanced_accuracy"] == pytest.approx(0.25)
    assert modality["difference_ci"]["balanced_accuracy"] is None
    gender = report["fairness"]["gender"]
    assert gender["difference_ci"]["tpr"] is None  # undefined gap: no interval either


def test_gap_interval_for_groups_with_enough_subjects():
    rng = np.random.default_rng(0)
    rows = [{"subject_id": f"s{i}", "modality": ("hand", "face")[i % 2], "gender": ("female", "male")[(i // 2) % 2],
             "prob_male": float(np.clip(0.5 + ((i // 2) % 2 - 0.5) * (0.8 if i % 2 else 0.2) + rng.normal(0, 0.2), 0, 1)),
             "path": f"/img/{i}.png", "status": "ok"} for i in range(40)]
    modality = evaluate_predictions(pd.DataFrame(rows), n_resamples=200, seed=0)[0]["fairness"]["modality"]
    assert modality["difference_groups"]["roc_auc"] == ["face", "hand"]  # the face scores separate better
    low, high = modality["difference_ci"]["roc_auc"]
    assert low <= modality["difference"]["roc_auc"] <= high


def test_groups_with_too_few_subjects_get_no_interval_and_are_marked(tmp_path):
    """A group of 2 subjects printed BA 0.286 [0.286, 0.286]: now it is marked too small, without an interval."""
    from unifiedgender.cli.render import print_evaluation_summary
    from unifiedgender.evaluation.fairness import MIN_CI_SUBJECTS
    from unifiedgender.evaluation.plots import write_plots

    rng = np.random.default_rng(3)
    rows = []
    for s in range(24):
        race = "tiny" if s < 2 else ("a" if s % 2 else "b")
        for i in range(3):
            rows.append({"path": f"{s}_{i}.png", "subject_id": f"s{s}", "gender": ("female", "male")[(s // 2) % 2 if s >= 2 else s],
                         "modality": "hand", "race": race, "prob_male": float(rng.uniform()), "status": "ok"})
    report, table = evaluate_predictions(pd.DataFrame(rows), n_resamples=50, seed=0)
    groups = report["fairness"]["race"]["groups"]
    assert groups["tiny"]["n_subjects"] == 2 < MIN_CI_SUBJECTS and groups["tiny"]["too_small"]
    assert all(groups["tiny"][f"{m}_ci"] is None for m in ("balanced_accuracy", "tpr", "roc_auc"))
    assert groups["tiny"]["balanced_accuracy"] is not None  # the value itself is kept
    assert not groups["a"]["too_small"] and groups["a"]["balanced_accuracy_ci"][0] is not None

    console = Console(record=True, width=300)
    print_evaluation_summary(report, console)
    text = console.export_text()
    tiny = next(line for line in text.splitlines() if "tiny" in line)
    assert "(too small)" in tiny and "[" not in tiny.split("(too small)")[1]  # no interval printed
    assert "subjects" in text and " 2 " in tiny  # subject counts in the table
    written = write_plots(report, table, tmp_path)
    assert {"reliability", "group_metrics_race"} <= set(written)


def test_group_plot_keeps_its_legend_off_the_bars_and_shows_na_and_counts():
    from unifiedgender.evaluation.fairness import GROUP_METRICS
    from unifiedgender.evaluation.plots import _group_bars, _reliability

    def group(n, subjects, value, small=False):
        entry = {"n": n, "n_subjects": subjects, "too_small": small}
        for metric in GROUP_METRICS:
            entry[metric] = None if value is None and metric in ("fpr", "roc_auc", "balanced_accuracy") else (value or 0.9)
            entry[f"{metric}_ci"] = None if small or entry[metric] is None else [entry[metric] - 0.1, entry[metric]]
        return entry

    figure = _group_bars({"a": group(30, 10, 0.8), "men only": group(12, 6, None), "tiny": group(4, 2, 0.5, True)}, "race")
    figure.canvas.draw()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, never over a bar
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("n/a") == 3  # the undefined metrics of "men only" are marked, not left out silently
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["a\n30 img, 10 subj", "men only\n12 img, 6 subj", "tiny\n4 img, 2 subj\ntoo small"]

    y = np.array([0, 0, 1, 1, 1, 0, 1])
    probs = np.array([0.05, 0.1, 0.55, 0.58, 0.95, 0.52, 0.97])
    figure = _reliability(y, probs)
    counts = sorted(int(t.get_text()) for t in figure.axes[0].texts)
    assert counts == [1, 1, 2, 3]  # images per occupied bin (0.05 | 0.1 | 0.52-0.58 | 0.95-0.97), beside each point
    assert sum(p.get_height() for p in figure.axes[1].patches) == len(y)


@pytest.mark.slow
def test_writing_plots_leaves_the_matplotlib_backend_and_pyplot_alone(tmp_path):
    """Plots are drawn on their own Agg canvases: importing the module and writing the PNGs neither switches the
    program's backend (it was switched globally at import) nor opens pyplot figures."""
    code = f"""
import sys, matplotlib
matplotlib.rcParams["backend"] = "pdf"
import numpy as np, pandas as pd
from unifiedgender.evaluation.assess import evaluate_predictions
from unifiedgender.evaluation.plots import write_plots
rows = [{{"path": f"{{s}}.png", "subject_id": f"s{{s}}", "gender": ("female", "male")[s % 2], "modality": "hand",
         "prob_male": (s % 10) / 10, "status": "ok"}} for s in range(20)]
report, table = evaluate_predictions(pd.DataFrame(rows), n_resamples=0)
written = write_plots(report, table, __import__("pathlib").Path({str(tmp_path)!r}))
print(matplotlib.rcParams["backend"], "matplotlib.pyplot" in sys.modules, len(written))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    backend, pyplot_loaded, n_plots = result.stdout.split()
    assert (backend, pyplot_loaded) == ("pdf", "False") and int(n_plots) >= 4
    assert (tmp_path / "roc_pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
