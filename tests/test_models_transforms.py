"""The eval transform follows the data config exactly (it matches timm's eval transform)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform

from unifiedgender.data.transforms import build_eval_transform
from unifiedgender.errors import UserError
from unifiedgender.models import create_model


def _photo(mode: str = "RGB", size=(97, 71)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize("backbone", ["test_resnet.r160_in1k", "tf_efficientnet_lite0.in1k", "tv-resnet18"])
def test_eval_transform_matches_timm_for_the_models_own_config(backbone):
    config = create_model("classifier", backbone, pretrained="none").data_config
    ours = build_eval_transform(config)(_photo())
    theirs = create_transform(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}, is_training=False)(_photo())
    assert ours.shape == (3, *config["input_size"][1:])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_grayscale_configs_convert_and_squash():
    config = create_model("simple_cnn", "simple_cnn").data_config
    tensor = build_eval_transform(config)(_photo("RGBA", size=(96, 103)))
    assert tensor.shape == (1, 96, 96)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    rgb = build_eval_transform(create_model("classifier", "test_resnet.r160_in1k", pretrained="none").data_config)
    assert rgb(_photo("L")).shape[0] == 3


def test_the_transform_is_picklable_for_dataloader_workers():
    transform = build_eval_transform(create_model("simple_cnn", "simple_cnn").data_config)
    assert torch.equal(pickle.loads(pickle.dumps(transform))(_photo()), transform(_photo()))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"mean": None}, "lacks 'mean'"),
        ({"input_size": [4, 8, 8]}, r"input_size \[4, 8, 8\] must be \[1 or 3, H, W\]"),
        ({"mean": [0.5]}, "mean/std need 3 values"),
        ({"crop_pct": 1.5}, "crop_pct 1.5 must be in"),
        ({"interpolation": "sinc"}, "interpolation 'sinc' unknown"),
        ({"crop_mode": "border"}, "crop_mode 'border' unsupported"),
    ],
)
def test_bad_data_configs_are_refused(change, match):
    config = {"input_size": [3, 8, 8], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "crop_pct": 0.9}
    config.update(change)
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(UserError, match=match):
        build_eval_transform(config)
