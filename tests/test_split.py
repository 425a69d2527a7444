"""Subject-level split: property-based tests (hypothesis) for no leakage, stratification and determinism."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.data.manifest import read_manifest, write_manifest
from unifiedgender.data.split import parse_ratios, split_manifest, split_warnings, write_splits
from unifiedgender.errors import UserError

RATIOS = st.sampled_from([(0.8, 0.2), (0.5, 0.5), (0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.34, 0.33, 0.33)])


@st.composite
def manifests(draw):
    """Random manifests: 1..40 subjects, 1..4 images each, one or two modalities, some duplicate groups."""
    n_subjects = draw(st.integers(1, 40))
    modalities = draw(st.sampled_from([("hand",), ("hand", "face")]))
    rows = []
    for s in range(n_subjects):
        gender = draw(st.sampled_from(["female", "male"]))
        for i in range(draw(st.integers(1, 4))):
            rows.append({"path": f"/x/s{s}_{i}.jpg", "subject_id": f"s{s}", "gender": gender,
                         "modality": draw(st.sampled_from(modalities)), "dup_group": None})
    for g in range(draw(st.integers(0, 4)) if len(rows) > 1 else 0):  # tie a few random images together as identical content
        members = draw(st.lists(st.integers(0, len(rows) - 1), min_size=2, max_size=3, unique=True))
        for m in members:
            rows[m]["dup_group"] = f"d{g}"
    return pd.DataFrame(rows)


def units(df: pd.DataFrame) -> dict[str, int]:
    """subject -> connected component over shared dup_groups (an independent reference implementation)."""
    graph = defaultdict(set)
    for _, group in df.dropna(subset=["dup_group"]).groupby("dup_group"):
        members = list(group["subject_id"].unique())
        for a in members:
            graph[a].update(members)
    component, label = {}, 0
    for subject in sorted(df["subject_id"].unique()):
        if subject in component:
            continue
        stack = [subject]
        while stack:
            s = stack.pop()
            if s not in component:
                component[s] = label
                stack.extend(graph[s])
        label += 1
    return component


def split_or_none(df, ratios, seed):
    try:
        return split_manifest(df, ratios, seed)
    except UserError as exc:
        assert "would be empty" in str(exc)
        return None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=manifests(), ratios=RATIOS, seed=st.integers(0, 2**31))
def test_no_leakage_and_complete(df, ratios, seed):
    parts = split_or_none(df, ratios, seed)
    if parts is None:
        assert df["subject_id"].nunique() < 2 * len(ratios) * 2  # only tiny manifests may leave a split empty
        return
    combined = pd.concat(parts.values())
    assert sorted(combined["path"]) == sorted(df["path"])
    assert combined.groupby("subject_id")["split"].nunique().eq(1).all()
    assert combined.dropna(subset=["dup_group"]).groupby("dup_group")["split"].nunique().eq(1).all()
    for name, part in parts.items():
        assert (part["split"] == name).all()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=manifests(), ratios=RATIOS, seed=st.integers(0, 2**31))
def test_stratified_within_one_unit(df, ratios, seed):
    parts = split_or_none(df, ratios, seed)
    if parts is None:
        return
    combined = pd.concat(parts.values())
    component = units(df)
    mixed = df["modality"].nunique() > 1
    per_unit = defaultdict(lambda: [set(), set(), set()])  # unit -> genders, modalities, splits
    for subject, gender, modality, split in combined[["subject_id", "gender", "modality", "split"]].values:
        facts = per_unit[component[subject]]
        facts[0].add(gender)
        facts[1].add(modality if mixed else "")
        facts[2].add(split)
    strata = defaultdict(list)
    for genders, modalities, splits in per_unit.values():
        assert len(splits) == 1
        strata[(frozenset(genders), frozenset(modalities))].append(next(iter(splits)))
    for assigned in strata.values():
        for name, ratio in zip(parts, ratios):
            assert abs(assigned.count(name) - ratio * len(assigned)) < 1 + 1e-9


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=manifests(), ratios=RATIOS, seed=st.integers(0, 2**31), shuffle_seed=st.integers(0, 1000))
def test_deterministic_and_independent_of_row_order(df, ratios, seed, shuffle_seed):
    first = split_or_none(df, ratios, seed)
    if first is None:
        return
    second = split_manifest(df, ratios, seed)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    shuffled = split_manifest(df.sample(frac=1, random_state=shuffle_seed).reset_index(drop=True), ratios, seed)
    assignment = {s: n for n, p in first.items() for s in p["subject_id"]}
    assert assignment == {s: n for n, p in shuffled.items() for s in p["subject_id"]}


def test_both_genders_reach_every_split_and_seeds_differ():
    rows = [{"path": f"/x/{g}{s}.jpg", "subject_id": f"{g}{s}", "gender": g, "modality": "hand"}
            for g in ("female", "male") for s in range(10)]
    df = pd.DataFrame(rows)
    parts = split_manifest(df, (0.7, 0.15, 0.15), seed=0)
    for part in parts.values():
        assert set(part["gender"]) == {"female", "male"}
    assignments = {tuple(split_manifest(df, (0.7, 0.15, 0.15), seed)["val"]["subject_id"]) for seed in range(5)}
    assert len(assignments) > 1


def test_published_split_is_kept_aside():
    df = pd.DataFrame([{"path": f"/x/{i}.jpg", "subject_id": str(i), "gender": "male" if i % 2 else "female",
                        "modality": "face", "split": "test"} for i in range(10)])
    parts = split_manifest(df, (0.8, 0.2), seed=1)
    assert (parts["train"]["published_split"] == "test").all() and (parts["train"]["split"] == "train").all()


@pytest.mark.parametrize("text, message", [
    ("0.8", "give 2 .* or 3"), ("0.5,0.3,0.1,0.1", "give 2"), ("0.9,0.2", "sum to 1.1"),
    ("a,b", "comma-separated numbers"), ("1,0", "positive"),
])
def test_parse_ratios_errors(text, message):
    with pytest.raises(UserError, match=message):
        parse_ratios(text)


def test_too_few_subjects():
    df = pd.DataFrame([{"path": "/x/a.jpg", "subject_id": "a", "gender": "male", "modality": "hand"}])
    with pytest.raises(UserError, match="split 'val' would be empty: 1 subjects are too few"):
        split_manifest(df, (0.8, 0.2), seed=0)


def test_cli_split_writes_manifests_and_refuses_overwrite(tmp_path):
    rows = []
    for i in range(12):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("L", (4, 4), i).save(path)
        rows.append({"path": str(path), "subject_id": f"p{i // 2}", "gender": "male" if i < 6 else "female",
                     "modality": "hand"})
    write_manifest(pd.DataFrame(rows), tmp_path / "m.csv")
    runner = CliRunner()
    args = ["data", "split", str(tmp_path / "m.csv"), "--ratios", "0.34,0.33,0.33", "--seed", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Subject-level split (seed 7" in result.output
    outs = [read_manifest(tmp_path / "m_split" / f"{n}.csv") for n in ("train", "val", "test")]
    assert sum(len(o) for o in outs) == 12
    assert all(o["subject_id"].nunique() == 2 and set(o["gender"]) == {"female", "male"} for o in outs)
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "already exists; pass --overwrite" in str(again.exception)
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    with pytest.raises(UserError, match="already exists"):
        write_splits({"train": outs[0]}, tmp_path / "m_split")


def test_one_file_under_two_subjects_cannot_be_split(tmp_path):
    """`/Real/./X.png` under another subject and gender is the same image: refused before any split (item 2)."""
    real = tmp_path / "Real"
    real.mkdir()
    rows = []
    for s in range(6):
        Image.new("L", (4, 4), s).save(real / f"{s}.png")
        rows.append({"path": str(real / f"{s}.png"), "subject_id": f"s{s}", "gender": ["male", "female"][s % 2],
                     "modality": "fingerprint"})
    rows.append({"path": f"{tmp_path}/Real/./0.png", "subject_id": "s9", "gender": "female", "modality": "fingerprint"})
    df = pd.DataFrame(rows)
    for seed in (2, 3):
        with pytest.raises(UserError, match=r"row 8: .*Real/\./0.png' is the same file as row 2"):
            split_manifest(df, (0.5, 0.5), seed)


def test_one_class_split_warns(tmp_path):
    df = pd.DataFrame({"path": [f"/x/{i}.png" for i in range(6)], "subject_id": [f"s{i}" for i in range(6)],
                       "gender": ["female"] * 6, "modality": ["hand"] * 6})
    parts = split_manifest(df, (0.5, 0.5), 0)
    warnings = split_warnings(parts)
    assert len(warnings) == 2 and all("has no male images" in w for w in warnings)
    both = df.assign(gender=["female", "male"] * 3)
    assert split_warnings(split_manifest(both, (0.5, 0.5), 0)) == []
    (tmp_path / "imgs").mkdir()
    for i in range(6):
        Image.new("L", (4, 4), i).save(tmp_path / "imgs" / f"{i}.png")
    write_manifest(df.assign(path=[str(tmp_path / "imgs" / f"{i}.png") for i in range(6)]), tmp_path / "m.csv")
    result = CliRunner().invoke(app, ["data", "split", str(tmp_path / "m.csv"), "--ratios", "0.5,0.5"])
    assert result.exit_code == 0 and "warning: split 'train' has no male images" in result.output
