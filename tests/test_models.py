"""Architectures: build, forward/backward on CPU with a tiny backbone, the output contract, the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from unifiedgender.errors import UserError
from unifiedgender.models import create_model, get_arch, list_archs
from unifiedgender.models.mag import DEFAULT_MODALITY_LOSS_WEIGHT

TINY = "test_resnet.r160_in1k"  # timm's test model: ~0.5M parameters
HAND, FACE = 0, 1

# arch, backbone, kwargs, input size, extra outputs
ARCHS = [
    ("umcc", TINY, {"flag": True}, (3, 64, 64), {}),
    ("umcc", TINY, {}, (3, 64, 64), {}),
    ("mag", TINY, {}, (3, 64, 64), {"gate_logits": 2}),
    ("classifier", TINY, {}, (3, 64, 64), {}),
    ("resnet50_head", TINY, {}, (3, 64, 64), {}),
    ("ridge_classifier", TINY, {}, (3, 64, 64), {}),
    ("multitask", TINY, {}, (3, 64, 64), {"age_logits": 8}),
    ("multitask", TINY, {"age_mode": "regression"}, (3, 64, 64), {"age_logits": 1}),
    ("simple_cnn", "simple_cnn", {}, (1, 96, 96), {}),
]


def test_registry_lists_every_architecture():
    assert list_archs() == ["classifier", "mag", "multitask", "resnet50_head", "ridge_classifier", "simple_cnn", "umcc"]


@pytest.mark.parametrize("arch,backbone,kwargs,shape,extra", ARCHS, ids=lambda v: v if isinstance(v, str) else None)
def test_forward_backward_and_output_contract(arch, backbone, kwargs, shape, extra):
    torch.manual_seed(0)
    model = create_model(arch, backbone, pretrained="none", **kwargs)
    model.train()
    images = torch.randn(3, *shape)
    modality = torch.tensor([HAND, FACE, HAND])
    out = model(images, modality)
    assert set(out) == {"logit", *extra}
    assert out["logit"].shape == (3,)
    for key, width in extra.items():
        assert out[key].shape == (3, width)
    loss = out["logit"].sum() + sum(out[k].sum() for k in extra)
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    assert model.training  # forward never flips the mode
    model.eval()
    model(images, modality)
    assert not model.training
    assert model.spec["arch"] == arch
    assert model.data_config["input_size"][0] == shape[0]


def test_umcc_flag_changes_the_classifier_and_the_output():
    torch.manual_seed(0)
    model = create_model("umcc", TINY, pretrained="none", flag=True).eval()
    assert model.classifier.in_features == model.backbone.num_features + 2
    images = torch.randn(1, 3, 64, 64).repeat(2, 1, 1, 1)
    out = model(images, torch.tensor([HAND, FACE]))["logit"]
    weight = model.classifier.weight[0]
    assert torch.allclose(out[0] - out[1], weight[-2] - weight[-1], atol=1e-5)
    no_flag = create_model("umcc", TINY, pretrained="none")
    assert no_flag.classifier.in_features == no_flag.backbone.num_features


def test_umcc_flag_refuses_a_modality_other_than_hand_or_face():
    model = create_model("umcc", TINY, pretrained="none", flag=True).eval()
    with pytest.raises(UserError, match="hand or face images only"):
        model(torch.randn(1, 3, 64, 64), torch.tensor([2]))


def test_mag_soft_mixes_head_logits_by_gate_softmax_and_hard_picks_argmax():
    torch.manual_seed(0)
    model = create_model("mag", TINY, pretrained="none").eval()
    assert model.modality_loss_weight == DEFAULT_MODALITY_LOSS_WEIGHT == 0.3
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        out = model(images, torch.tensor([0, 1, 0, 1]))
        features = model.backbone(images)
        weights = torch.softmax(model.gate(features), dim=1)
        hand, face = model.hand_head(features)[:, 0], model.face_head(features)[:, 0]
    assert torch.allclose(out["gate_logits"], model.gate(features))
    assert torch.allclose(out["logit"], weights[:, 0] * hand + weights[:, 1] * face, atol=1e-6)
    model.gating = "hard"
    with torch.no_grad():
        hard = model(images, torch.tensor([0, 1, 0, 1]))["logit"]
    assert torch.allclose(hard, torch.where(weights.argmax(1) == 0, hand, face))
    assert create_model("mag", TINY, pretrained="none", modality_loss_weight=0.5).modality_loss_weight == 0.5


def test_mag_keys_match_the_published_layout():
    keys = set(create_model("mag", TINY, pretrained="none").state_dict())
    assert {"gate.0.weight", "gate.0.bias", "gate.2.weight", "gate.2.bias", "hand_head.weight", "face_head.bias"} <= keys
    assert all(k.split(".")[0] in {"backbone", "gate", "hand_head", "face_head"} for k in keys)


def test_simple_cnn_is_the_seed_cnn_with_its_own_data_config():
    model = create_model("simple_cnn", "simple_cnn")
    assert model.data_config["input_size"] == [1, 96, 96]
    assert model.data_config["mean"] == [0.0] and model.data_config["std"] == [1.0]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64] and convs[0].in_channels == 1
    assert model.head[0].in_features == 64 * 22 * 22
    with pytest.raises(UserError, match="has its own backbone; pass backbone 'simple_cnn'"):
        create_model("simple_cnn", "resnet18")
    with pytest.raises(UserError, match="no pretrained weights to load; use --pretrained none"):
        create_model("simple_cnn", "simple_cnn", pretrained=__file__)


def test_resnet50_head_has_the_seed_head():
    model = create_model("resnet50_head", TINY, pretrained="none")
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    dropouts = [m for m in model.head if isinstance(m, torch.nn.Dropout)]
    assert [(l.in_features, l.out_features) for l in linears] == [(model.backbone.num_features, 128), (128, 64), (64, 1)]
    assert len(dropouts) == 2
    assert get_arch("resnet50_head").default_backbone == "resnet50.tv_in1k"


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: create_model("vgg", TINY), r"unknown architecture 'vgg'; use one of classifier, mag, multitask"),
        (lambda: create_model("classifier", TINY, flag=True), r"modality flag \(F1\) applies to umcc only"),
        (lambda: create_model("mag", TINY, pretrained="none", gating="medium"), r"unknown gating 'medium'; use one of soft, hard"),
        (lambda: create_model("mag", TINY, pretrained="none", colour="red"), r"has no option 'colour'; options: gating"),
        (lambda: create_model("multitask", TINY, pretrained="none", age_mode="years"), r"unknown age_mode 'years'"),
        (lambda: create_model("classifier", "no_such_net_xyz"), r"unknown backbone 'no_such_net_xyz'"),
        (lambda: create_model("classifier", "tv-alexnet"), r"unknown torchvision backbone 'tv-alexnet'; supported: tv-resnet18"),
        (lambda: create_model("classifier", "tv-resnet18.imagenet9k"), r"unknown weights 'imagenet9k'; use one of imagenet1k_v1"),
        (lambda: create_model("classifier", "resnet18.no_such_tag", pretrained="none"), r"backbone 'resnet18.no_such_tag'"),
        (lambda: create_model("classifier", TINY, pretrained="/no/such/file.pth"), r"weights file not found: /no/such/file.pth"),
        (lambda: create_model("classifier", None), r"needs a backbone"),
    ],
)
def test_bad_requests_are_refused_clearly(call, match):
    with pytest.raises(UserError, match=match):
        call()


def test_timm_in_chans_one_gives_a_grayscale_data_config():
    model = create_model("classifier", TINY, pretrained="none", in_chans=1)
    assert model.data_config["input_size"][0] == 1 and len(model.data_config["mean"]) == 1
    assert model(torch.randn(2, 1, 64, 64), torch.tensor([2, 2]))["logit"].shape == (2,)
    assert model.spec["kwargs"] == {"in_chans": 1}


TORCHVISION = [
    # backbone, num_features, input side, expected data config (crop, crop_pct)
    ("tv-resnet18", 512, 64, (224, 224 / 256)),
    ("tv-mobilenet_v2.imagenet1k_v1", 1280, 64, (224, 224 / 256)),
    pytest.param("tv-resnet50.imagenet1k_v1", 2048, 64, (224, 224 / 256), marks=pytest.mark.slow),
    pytest.param("tv-efficientnet_v2_s", 1280, 64, (384, 1.0), marks=pytest.mark.slow),
    pytest.param("tv-inception_v3", 2048, 80, (299, 299 / 342), marks=pytest.mark.slow),
    pytest.param("tv-vit_b_16", 768, 224, (224, 224 / 256), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("backbone,num_features,side,crop", TORCHVISION)
def test_torchvision_backbones_give_pooled_features_and_their_weights_data_config(backbone, num_features, side, crop):
    model = create_model("classifier", backbone, pretrained="none").eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, side, side))
    assert features.shape == (1, num_features)
    assert model.data_config["input_size"] == [3, crop[0], crop[0]]
    assert model.data_config["crop_pct"] == pytest.approx(crop[1])
    assert model.spec["backbone"].startswith(backbone.split(".")[0] + ".")
    assert len(model.backbone_groups) > 2 and all(model.backbone_groups)


@pytest.mark.parametrize("arch", ["umcc", "mag", "classifier"])
def test_heads_fit_backbones_with_a_post_pool_head(arch):
    """MobileNetV3 pools 288 features, then its conv head gives 1024: the heads must take the 1024."""
    model = create_model(arch, "mobilenetv3_small_050", pretrained="none", flag=arch == "umcc").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), torch.tensor([HAND, FACE]))
    assert out["logit"].shape == (2,)


def test_every_architecture_class_is_registered_and_the_package_imports_its_module():
    import ast
    from pathlib import Path

    import unifiedgender.models as models_package
    from unifiedgender.models.base import GenderModel
    from unifiedgender.models.registry import ARCHITECTURES

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {cls for cls in subclasses(GenderModel) if cls.__module__.startswith("unifiedgender.models.")}
    assert ours == {spec.cls for spec in ARCHITECTURES.values()}
    folder = Path(models_package.__file__).parent
    registering = {p.stem for p in folder.glob("*.py") if re.search(r"^@register_arch\(", p.read_text(), re.M)}
    init = ast.parse((folder / "__init__.py").read_text())
    imported = {a.name for n in init.body if isinstance(n, ast.ImportFrom) and n.module == "unifiedgender.models" for a in n.names}
    assert registering and registering <= imported  # a module left out would be missing from list_archs()


def test_a_second_class_under_a_registered_name_is_refused():
    from unifiedgender.models.registry import register_arch

    with pytest.raises(ValueError, match="architecture 'umcc' is registered twice"):
        register_arch("umcc")(type("Other", (), {}))


@pytest.mark.parametrize("arch", list_archs())
def test_training_accepts_every_registered_architecture(arch):
    from unifiedgender.training.config import TrainConfig

    assert TrainConfig(tag="t", arch=arch, train="a.csv", val="b.csv").validate().arch == arch


def test_training_refuses_an_unknown_architecture_naming_exactly_the_registered_ones():
    from unifiedgender.training.config import TrainConfig

    with pytest.raises(UserError, match="unknown architecture 'vgg'") as caught:
        TrainConfig(tag="t", arch="vgg", train="a.csv", val="b.csv").validate()
    assert set(re.findall(r"\w+", str(caught.value).split("use one of")[1])) == set(list_archs())


def test_the_documented_architectures_are_the_registered_ones():
    """`ugn train --help` stays free of torch, so it names examples and points at docs/models.md's table: the
    examples must be registered and the table must list exactly the registry's names."""
    from typer.testing import CliRunner

    from unifiedgender.cli.app import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert result.exit_code == 0, result.output
    examples = re.search(r"Architecture, e\.g\. ([\w, ]+?) \(docs/models\.md", result.output).group(1)
    assert set(examples.split(", ")) <= set(list_archs())
    table = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    assert set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M)) == set(list_archs())
