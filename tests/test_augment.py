"""Device-side batched augmentation presets."""

import pytest
import torch

from unifiedgender.errors import UserError
from unifiedgender.training.augment import DeviceAugment, Normalize

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _images(n=8, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


def _aug(preset, c=3, seed=1):
    return DeviceAugment(preset, Normalize(MEAN, STD, c, torch.device("cpu")), seed=seed)


def test_none_preset_only_normalises():
    x = _images()
    out, perm, lam = _aug("none")(x, torch.zeros(8, dtype=torch.long))
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(out, expected) and perm is None and lam == 1.0


@pytest.mark.parametrize("preset", ["full", "randaugment", "mixup"])
def test_presets_keep_shape_change_pixels_and_repeat_with_the_same_seed(preset):
    x, modality = _images(), torch.zeros(8, dtype=torch.long)
    torch.manual_seed(0)
    a, _, _ = _aug(preset)(x, modality)
    torch.manual_seed(0)
    b, _, _ = _aug(preset)(x, modality)
    plain, _, _ = _aug("none")(x, modality)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, plain)


def test_state_dict_resumes_the_same_stream():
    x, modality = _images(), torch.zeros(8, dtype=torch.long)
    aug = _aug("full")
    aug(x, modality)
    state = aug.state_dict()
    expected, _, _ = aug(x, modality)
    other = _aug("full", seed=99)
    other.load_state_dict(state)
    assert torch.equal(other(x, modality)[0], expected)


def test_no_colour_jitter_for_fingerprints():
    aug = _aug("full")
    unit = torch.rand(4, 3, 16, 16)
    fingerprint = torch.full((4,), 2, dtype=torch.long)
    assert torch.equal(aug.colour_jitter(unit.clone(), fingerprint), unit.clamp(0, 1))
    assert not torch.allclose(aug.colour_jitter(unit.clone(), torch.zeros(4, dtype=torch.long)), unit)


def test_horizontal_flip_only_geometry_mirrors_the_image():
    aug = _aug("full")
    s = aug.settings
    s.scale, s.ratio, s.rotation, s.hflip = (1.0, 1.0), (1.0, 1.0), 0.0, 1.0
    unit = torch.rand(2, 3, 16, 16)
    assert torch.allclose(aug.geometry(unit), unit.flip(-1), atol=1e-5)


def test_mixup_pairs_and_lam_in_range():
    aug = _aug("mixup")
    for _ in range(6):
        _, perm, lam = aug(_images(), torch.zeros(8, dtype=torch.long))
        assert sorted(perm.tolist()) == list(range(8)) and 0.0 <= lam <= 1.0


def test_grayscale_single_channel_and_unknown_code():
    x = _images(c=1)
    out, _, _ = _aug("full", c=1)(x, torch.full((8,), 2, dtype=torch.long))
    assert out.shape == (8, 1, 32, 32)
    with pytest.raises(UserError, match="unknown augmentation preset 'x'; use one of full, none, randaugment, mixup"):
        _aug("x")


def test_batched_randaugment_equals_torchvision_ops_image_by_image():
    """Each distinct op runs once on its sub-batch: the same pixels as applying every image's ops alone."""
    aug = _aug("randaugment")
    x = _images()
    plan = aug.plan_randaugment(8, *x.shape[-2:])
    assert len(plan) == 2 and all(len(slot) == 8 for slot in plan)
    names = set(aug._randaugment._AUGMENTATION_SPACE)
    assert all(name in names for slot in plan for name, _ in slot)
    batched = aug.apply_randaugment(x, plan)
    ra = aug._randaugment
    for i in range(8):
        one = x[i : i + 1]
        for slot in plan:
            name, magnitude = slot[i]
            one = ra._apply_image_or_video_transform(one, name, magnitude, interpolation=ra.interpolation, fill=ra._fill)
        assert torch.equal(batched[i : i + 1], one), (i, [slot[i] for slot in plan])
    assert torch.equal(x, _images()), "the input batch is left as it was"


def test_randaugment_draws_from_the_checkpointed_generator_not_torch():
    x, modality = _images(), torch.zeros(8, dtype=torch.long)
    torch.manual_seed(0)
    a = _aug("randaugment", seed=3)(x, modality)[0]
    torch.manual_seed(1)  # another global torch state: same augmentation
    b = _aug("randaugment", seed=3)(x, modality)[0]
    assert torch.equal(a, b)
