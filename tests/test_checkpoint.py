"""Checkpoints: round trip for every architecture, strict loading, refusal of unsafe pickles, resumable state."""

from __future__ import annotations

import builtins
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from unifiedgender.checkpoint import (
    FORMAT,
    LABEL_MAP,
    capture_rng_state,
    load_checkpoint,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
    to_plain,
)
from unifiedgender.data.manifest import MODALITIES
from unifiedgender.errors import UserError
from unifiedgender.models import create_model
from unifiedgender.tags import RunTag

TINY = "test_resnet.r160_in1k"
CASES = [
    ("umcc", TINY, {"flag": True}, (3, 64, 64)),
    ("mag", TINY, {"gating": "hard"}, (3, 64, 64)),
    ("classifier", "tv-resnet18", {}, (3, 64, 64)),
    ("resnet50_head", TINY, {"drop_rate": 0.3}, (3, 64, 64)),
    ("multitask", TINY, {"age_mode": "regression"}, (3, 64, 64)),
    ("simple_cnn", "simple_cnn", {"image_size": 48}, (1, 48, 48)),
]


@pytest.mark.parametrize("arch,backbone,kwargs,shape", CASES, ids=[c[0] for c in CASES])
def test_every_architecture_round_trips(tmp_path, arch, backbone, kwargs, shape):
    torch.manual_seed(1)
    model = create_model(arch, backbone, pretrained="none", **kwargs).eval()
    tag = RunTag(model.spec["backbone"], flag="F1" if kwargs.get("flag") else "F0", seed=1)
    path = save_checkpoint(tmp_path / "best.pt", model, tag=tag, config={"lr": 1e-4, "out": tmp_path},
                           metrics={"val_balanced_accuracy": np.float64(0.75)})
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    images, modality = torch.randn(2, *shape), torch.tensor([0, 1])
    with torch.no_grad():
        expected, got = model(images, modality), loaded(images, modality)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key])
    assert info["format"] == FORMAT and info["arch"] == arch and info["backbone"] == model.spec["backbone"]
    assert info["tag"] == str(tag) and info["label_map"] == LABEL_MAP == {"female": 0, "male": 1}
    assert info["model_kwargs"] == kwargs if arch != "umcc" else info["flag"] is True
    assert info["data_config"] == model.data_config == loaded.data_config
    assert info["config"] == {"lr": 1e-4, "out": str(tmp_path)}
    assert info["metrics"] == {"val_balanced_accuracy": 0.75}
    assert {"torch", "timm", "torchvision", "unifiedgender", "python"} <= set(info["versions"])
    assert info["created"].endswith("+00:00")
    hand_face = arch == "mag" or kwargs.get("flag")
    assert info["modalities"] == loaded.modalities == (("hand", "face") if hand_face else MODALITIES)
    assert read_checkpoint(path)["modalities"] == list(info["modalities"])
    assert "state_dict" not in info


def test_saving_is_atomic_and_refuses_to_overwrite_when_asked(tmp_path):
    model = create_model("classifier", TINY, pretrained="none")
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        save_checkpoint(path, model, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary files left


def test_a_mismatching_state_dict_names_missing_and_unexpected_keys(tmp_path):
    model = create_model("classifier", TINY, pretrained="none")
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.9.weight"] = payload["state_dict"].pop("head.1.weight")
    payload["state_dict"]["backbone.fc.bias"] = torch.zeros(3)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"missing keys: head\.1\.weight; unexpected keys: head\.9\.weight, backbone\.fc\.bias"):
        load_checkpoint(tmp_path / "bad.pt")


class _Payload:
    """Unpickling this object runs code that writes a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned.txt"
    model = create_model("classifier", TINY, pretrained="none")
    payload = torch.load(save_checkpoint(tmp_path / "ok.pt", model), weights_only=True)
    payload["metrics"] = {"evil": _Payload(marker)}
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(UserError, match=r"evil\.pt: refused to load: it holds pickled Python objects.*GLOBAL .*exec"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.read_text() == "pwned"


def test_files_that_are_not_ugn_checkpoints_are_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "published.pt")
    with pytest.raises(UserError, match="not a ugn checkpoint .*nor a published UnifiedGenderNet UMCC/MAG state dict"):
        load_checkpoint(tmp_path / "published.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a zip or pickle")
    with pytest.raises(UserError, match="broken.pt: not a readable PyTorch file"):
        load_checkpoint(tmp_path / "broken.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    model = create_model("classifier", TINY, pretrained="none")
    good = torch.load(save_checkpoint(tmp_path / "good.pt", model), weights_only=True)
    del good["data_config"]
    torch.save(good, tmp_path / "incomplete.pt")
    with pytest.raises(UserError, match="lacks 'data_config'"):
        load_checkpoint(tmp_path / "incomplete.pt")


def test_resumable_last_checkpoint_restores_optimizer_scheduler_and_rng(tmp_path):
    torch.manual_seed(0)
    model = create_model("classifier", TINY, pretrained="none")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(2, 3, 64, 64), torch.zeros(2, dtype=torch.long))["logit"].sum().backward()
    optimizer.step()
    scheduler.step()
    random.seed(3)
    np.random.seed(3)
    rng = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    resume = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": 1, "rng": rng}
    save_checkpoint(tmp_path / "last.pt", model, resume=resume)

    payload = read_checkpoint(tmp_path / "last.pt")
    fresh_opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(payload["resume"]["optimizer"])
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert payload["resume"]["epoch"] == 1
    restore_rng_state(payload["resume"]["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    model_again, info = load_checkpoint(tmp_path / "last.pt")  # a last.pt is also a loadable model
    assert "resume" not in info


def test_to_plain_refuses_objects_that_a_safe_load_could_not_read():
    assert to_plain({"a": (Path("/x"), np.int64(3))}) == {"a": ("/x", 3)}
    with pytest.raises(TypeError, match=r"config\.fn: function cannot be stored"):
        to_plain({"fn": lambda: 0}, "config")


@pytest.mark.parametrize("arch,backbone,kwargs,expected", [
    ("umcc", TINY, {"flag": True}, ("hand", "face")),
    ("umcc", TINY, {}, MODALITIES),
    ("mag", TINY, {}, ("hand", "face")),
    ("simple_cnn", "simple_cnn", {"image_size": 32}, MODALITIES),
], ids=["umcc-F1", "umcc-F0", "mag", "simple_cnn"])
def test_a_checkpoint_saved_before_modalities_were_stored_gets_them_from_its_architecture(tmp_path, arch, backbone,
                                                                                          kwargs, expected):
    model = create_model(arch, backbone, pretrained="none", **kwargs)
    payload = torch.load(save_checkpoint(tmp_path / "new.pt", model), weights_only=True)
    del payload["modalities"]
    torch.save(payload, tmp_path / "old.pt")
    loaded, info = load_checkpoint(tmp_path / "old.pt")
    assert info["modalities"] == loaded.modalities == expected


def test_the_stored_modalities_are_what_the_loaded_model_accepts(tmp_path):
    from unifiedgender.inference.predictor import Predictor

    model = create_model("simple_cnn", pretrained="none", image_size=32)
    model.modalities = ("fingerprint",)  # e.g. a model that should only ever see fingerprints
    path = save_checkpoint(tmp_path / "fp.pt", model)
    loaded, info = load_checkpoint(path)
    assert info["modalities"] == loaded.modalities == ("fingerprint",)
    predictor = Predictor.from_checkpoint(path, device="cpu", engine="torch")
    assert predictor.modalities == ("fingerprint",)
    with pytest.raises(UserError, match="this model takes fingerprint images, not 'face'"):
        list(predictor.predict_paths([tmp_path / "x.png"], "face"))


@pytest.mark.parametrize("stored", [[], ["hand", "paw"], "hand", None])
def test_bad_stored_modalities_are_refused_naming_the_file(tmp_path, stored):
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", create_model("classifier", TINY, pretrained="none")),
                         weights_only=True)
    payload["modalities"] = stored
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"bad.pt: checkpoint 'modalities' .* is not a list drawn from hand, face"):
        load_checkpoint(tmp_path / "bad.pt")


def test_every_checkpoint_read_goes_through_the_safe_loader():
    """torch.load is called in one function, models/weights.safe_torch_load (weights_only=True); everything else
    (checkpoints, last.pt, pretrained weights, SAM2 files) reads through it."""
    import ast
    from pathlib import Path

    import unifiedgender

    package = Path(unifiedgender.__file__).parent
    callers = set()
    for path in sorted(package.rglob("*.py")):
        where: dict[int, str] = {}  # call node -> the innermost function holding it (ast.walk goes outside in)
        for scope in ast.walk(ast.parse(path.read_text())):
            if isinstance(scope, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(scope):
                    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                            and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                        where[id(node)] = getattr(scope, "name", "<module>")
        callers |= {(str(path.relative_to(package)), name) for name in where.values()}
    assert callers == {("models/weights.py", "safe_torch_load")}, callers
