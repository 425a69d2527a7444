"""RunTag: parse/format round trip, published tags, refusals naming the valid codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unifiedgender.errors import UserError
from unifiedgender.tags import AUGMENT_CODES, FLAG_CODES, FREEZE_CODES, LOSS_CODES, RunTag

VALID = [
    # text, backbone, flag, augment, loss, freeze, extras, seed
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0", "tf_efficientnetv2_s.in1k", "F0", "Af", "Lf", "Z0", (), None),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42", "tf_efficientnetv2_s.in1k", "F0", "Af", "Lb", "Z0",
     (("gating", "soft"),), 42),
    ("tf_efficientnetv2_s.in1k_F1_An_Lw_Z1", "tf_efficientnetv2_s.in1k", "F1", "An", "Lw", "Z1", (), None),
    ("resnet18_F0_Ar_Lb_Z2_seed0", "resnet18", "F0", "Ar", "Lb", "Z2", (), 0),
    ("tv-mobilenet_v2.imagenet1k_v1_F0_Am_Lf_Z3_lr=0.0003_bs=32", "tv-mobilenet_v2.imagenet1k_v1", "F0", "Am", "Lf",
     "Z3", (("lr", "0.0003"), ("bs", "32")), None),
    ("vit_base_patch16_224.augreg2_in21k_ft_in1k_F1_Af_Lb_Z0_arch=mag_gating=hard_seed7",
     "vit_base_patch16_224.augreg2_in21k_ft_in1k", "F1", "Af", "Lb", "Z0", (("arch", "mag"), ("gating", "hard")), 7),
]


@pytest.mark.parametrize("text,backbone,flag,augment,loss,freeze,extras,seed", VALID)
def test_valid_tags_parse_into_fields_and_round_trip(text, backbone, flag, augment, loss, freeze, extras, seed):
    tag = RunTag.parse(text)
    assert (tag.backbone, tag.flag, tag.augment, tag.loss, tag.freeze, tag.extras, tag.seed) == (
        backbone, flag, augment, loss, freeze, extras, seed)
    assert str(tag) == text
    assert RunTag.parse(str(tag)) == tag


def test_published_tag_accessors():
    tag = RunTag.parse("tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42")
    assert tag.model_name == "tf_efficientnetv2_s"
    assert tag.pretrain == "in1k"
    assert tag.flag_on is False
    assert tag.extra("gating") == "soft"
    assert tag.extra("missing", "x") == "x"
    assert RunTag.parse("resnet18_F1_Af_Lb_Z0").pretrain is None
    assert RunTag.parse("resnet18_F1_Af_Lb_Z0").flag_on is True


INVALID = [
    ("", "empty"),
    ("tf_efficientnetv2_s.in1k", r"expected <backbone>.*valid codes: F: F0, F1"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf", r"expected <backbone>"),
    ("tf_efficientnetv2_s.in1k_F2_Af_Lf_Z0", r"unknown F code 'F2'; valid F codes: F0, F1"),
    ("tf_efficientnetv2_s.in1k_F0_Ax_Lf_Z0", r"unknown A code 'Ax'; valid A codes: Af, An, Ar, Am"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lq_Z0", r"unknown L code 'Lq'; valid L codes: Lb, Lf, Lw"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z9", r"unknown Z code 'Z9'; valid Z codes: Z0, Z1, Z2, Z3"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0_seed4_gating=soft", r"'_seedN' must come last"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0_gating", r"cannot read 'gating'"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0_gating=soft_gating=hard", r"repeated extra key"),
    ("tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0_seed007", r"without leading zeros"),
    ("_F0_Af_Lf_Z0", r"invalid backbone "),
    ("bad backbone_F0_Af_Lf_Z0", r"invalid backbone 'bad backbone'"),
]


@pytest.mark.parametrize("text,match", INVALID)
def test_invalid_tags_are_refused_with_the_valid_codes(text, match):
    with pytest.raises(UserError, match=match):
        RunTag.parse(text)


def test_constructed_tag_is_validated_and_formats():
    assert str(RunTag("resnet18.a1_in1k", freeze="Z1", seed=3)) == "resnet18.a1_in1k_F0_Af_Lb_Z1_seed3"
    with pytest.raises(UserError, match="valid L codes: Lb, Lf, Lw"):
        RunTag("resnet18", loss="focal")
    with pytest.raises(UserError, match="invalid extra 'seed=1'"):
        RunTag("resnet18", extras=(("seed", "1"),))
    with pytest.raises(UserError, match="seed -1 must be >= 0"):
        RunTag("resnet18", seed=-1)


_names = st.from_regex(r"[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,5}){0,2}(\.[a-z0-9]{1,6}(_[a-z0-9]{1,4}){0,2})?", fullmatch=True)
_extras = st.lists(
    st.tuples(st.from_regex(r"[a-rt-z][a-z0-9]{0,5}", fullmatch=True), st.from_regex(r"[a-z0-9.]{1,6}", fullmatch=True)),
    max_size=3, unique_by=lambda kv: kv[0],
)


@given(
    backbone=_names,
    codes=st.tuples(*(st.sampled_from(sorted(c)) for c in (FLAG_CODES, AUGMENT_CODES, LOSS_CODES, FREEZE_CODES))),
    extras=_extras,
    seed=st.none() | st.integers(0, 10**6),
)
def test_any_valid_tag_round_trips(backbone, codes, extras, seed):
    tag = RunTag(backbone, *codes, extras=tuple(extras), seed=seed)
    assert RunTag.parse(str(tag)) == tag
    assert str(RunTag.parse(str(tag))) == str(tag)
