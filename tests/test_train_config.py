"""The one configuration path: defaults < recipe < config file < flags < the run tag's settings."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest
import yaml

from unifiedgender.errors import UserError
from unifiedgender.training.config import DEFAULT_SEED, TrainConfig, model_options, resolve_config

TAG = "tf_efficientnet_lite0.in1k_F0_Af_Lf_Z0"
BASE = {"tag": TAG, "arch": "classifier", "train": "train.csv", "val": "val.csv"}


def _flags(**given):
    return {**{f.name: None for f in fields(TrainConfig) if f.metadata["flags"]}, **BASE, **given}


def _config_file(tmp_path, **values):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_each_layer_overrides_the_one_below(tmp_path):
    # recipe "hand": lr 3e-4, select_metric val_auc, epochs 8, image_size 112
    defaults = resolve_config(None, _flags())
    assert (defaults.lr, defaults.epochs, defaults.select_metric) == (1e-4, 10, "val_balanced_acc")
    recipe = resolve_config(None, _flags(), recipe="hand")
    assert (recipe.lr, recipe.epochs, recipe.select_metric, recipe.image_size) == (3e-4, 8, "val_auc", 112)
    config = resolve_config(_config_file(tmp_path, lr=5e-4, epochs=3), _flags(), recipe="hand")
    assert (config.lr, config.epochs, config.select_metric) == (5e-4, 3, "val_auc")
    flags = resolve_config(_config_file(tmp_path, lr=5e-4, epochs=3), _flags(lr=1e-3), recipe="hand")
    assert (flags.lr, flags.epochs) == (1e-3, 3)


def test_the_tag_settles_seed_and_focal_settings_over_every_file(tmp_path):
    tag = f"{TAG}_gamma=1.5_alpha=0.25_seed3"
    config = resolve_config(_config_file(tmp_path, seed=7, focal_gamma=3.0, focal_alpha=0.5), _flags(tag=tag))
    assert (config.seed, config.focal_gamma, config.focal_alpha) == (3, 1.5, 0.25)
    # the value the issue reported: an explicit default (2.0) in the file is not kept either
    assert resolve_config(_config_file(tmp_path, focal_gamma=2.0), _flags(tag=tag)).focal_gamma == 1.5
    untagged = resolve_config(_config_file(tmp_path, seed=7, focal_gamma=3.0), _flags())
    assert (untagged.seed, untagged.focal_gamma, untagged.focal_alpha) == (7, 3.0, None)


def test_seed_flag_is_used_without_a_tag_seed_and_refused_against_a_different_one():
    assert resolve_config(None, _flags()).seed == DEFAULT_SEED
    assert resolve_config(None, _flags(seed=5)).seed == 5
    assert resolve_config(None, _flags(tag=f"{TAG}_seed5", seed=5)).seed == 5
    with pytest.raises(UserError, match=r"--seed 9 contradicts the run tag .*_seed5 \(seed 5\); drop --seed or change the tag"):
        resolve_config(None, _flags(tag=f"{TAG}_seed5", seed=9))


def test_tag_extras_split_into_settings_and_model_options():
    assert model_options(f"{TAG}_gating=soft_gamma=1.5_width=2_seed1") == {"gating": "soft", "width": 2}
    with pytest.raises(UserError, match="gamma=high is not a number"):
        resolve_config(None, _flags(tag=f"{TAG}_gamma=high"))


def test_command_options_are_the_declared_fields():
    from unifiedgender.cli.train import COMMAND_OPTIONS, train

    declared = [f.name for f in fields(TrainConfig) if f.metadata["flags"]]
    options = list(inspect.signature(train).parameters)
    assert [name for name in options if name not in COMMAND_OPTIONS] == declared
    assert all(f.metadata["help"] for f in fields(TrainConfig) if f.metadata["flags"] and f.name != "device")
