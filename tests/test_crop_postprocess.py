"""Mask post-processing, prompt placement and RGB conversion on synthetic inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from unifiedgender.crop.postprocess import Box, binarize, bounding_box, crop_region, dilate, disk, largest_component
from unifiedgender.crop.prompts import prompt_points
from unifiedgender.crop.sam import as_rgb_uint8
from unifiedgender.errors import UserError


def blank(height: int = 80, width: int = 100) -> np.ndarray:
    return np.zeros((height, width), dtype=np.float32)  # SAM2 masks come back as float 0/1


def test_disk_is_a_true_disk_not_opencvs_ellipse():
    d = disk(5)
    assert d.shape == (11, 11) and d.dtype == np.uint8
    yy, xx = np.mgrid[-5:6, -5:6]
    np.testing.assert_array_equal(d, (xx**2 + yy**2 <= 25).astype(np.uint8))
    assert d.sum() == 81  # OpenCV's MORPH_ELLIPSE of the same size has 89 pixels
    assert d[0, 4] == 0 and d[3, 0] == 0 and d[0, 5] == 1
    np.testing.assert_array_equal(disk(0), [[1]])
    with pytest.raises(ValueError, match="radius"):
        disk(-1)


def test_dilating_one_pixel_gives_the_disk_and_an_exact_box():
    mask = blank()
    mask[40, 50] = 1
    grown = dilate(binarize(mask), 5)
    assert grown.sum() == 81
    assert bounding_box(grown) == Box(45, 35, 56, 46)
    np.testing.assert_array_equal(dilate(binarize(mask), 0), binarize(mask))


def test_several_blobs_keep_the_largest():
    mask = blank()
    mask[10:20, 10:20] = 1  # 100 px
    mask[40:70, 60:90] = 1  # 900 px: the largest
    mask[60:66, 20:26] = 1  # 36 px
    component, box = crop_region(mask, dilate_radius=5)
    assert box == Box(55, 35, 95, 75)  # the largest blob's box grown by 5 px on each side
    assert component[15, 15] == 0 and component[63, 23] == 0
    assert component.dtype == np.uint8 and set(np.unique(component)) == {0, 1}


def test_blob_within_5px_is_merged_by_the_dilation():
    mask = blank()
    mask[30:50, 20:40] = 1  # main blob, x 20..39
    mask[35:40, 45:48] = 1  # 5 px gap (x 40..44), then x 45..47
    _, box = crop_region(mask, dilate_radius=5)
    assert box == Box(15, 25, 53, 55)  # spans both blobs


def test_blob_farther_than_twice_the_radius_stays_separate():
    mask = blank()
    mask[30:50, 20:40] = 1
    mask[35:40, 51:54] = 1  # 11 px gap: the two 5 px dilations do not meet
    _, box = crop_region(mask, dilate_radius=5)
    assert box == Box(15, 25, 45, 55)
    _, box_without_dilation = crop_region(mask, dilate_radius=0)
    assert box_without_dilation == Box(20, 30, 40, 50)


def test_largest_blob_touching_the_border_is_clipped_to_the_image():
    mask = blank(60, 90)
    mask[0:30, 0:40] = 1  # touches top and left edges
    mask[50:55, 80:90] = 1  # small blob touching the right edge
    component, box = crop_region(mask, dilate_radius=5)
    assert box == Box(0, 0, 45, 35)
    assert component.shape == mask.shape


def test_empty_mask_gives_no_box():
    component, box = crop_region(blank(), dilate_radius=5)
    assert box is None
    assert component.sum() == 0
    assert largest_component(binarize(blank())).sum() == 0


def test_bool_and_255_masks_give_the_same_box():
    mask = blank()
    mask[5:9, 7:12] = 1
    expected = crop_region(mask, 2)[1]
    assert crop_region(mask.astype(bool), 2)[1] == expected == Box(5, 3, 14, 11)
    assert crop_region((mask * 255).astype(np.uint8), 2)[1] == expected
    with pytest.raises(ValueError, match="2-D"):
        binarize(np.zeros((2, 3, 3)))


def test_prompt_points_centre_and_five():
    np.testing.assert_allclose(prompt_points(200, 100, 1), [[100, 50]])
    five = prompt_points(200, 100, 5, spacing=0.2)  # step = 0.2 * 100 = 20 px
    np.testing.assert_allclose(five, [[100, 50], [80, 50], [120, 50], [100, 30], [100, 70]])
    with pytest.raises(UserError, match="--points 3"):
        prompt_points(10, 10, 3)
    with pytest.raises(UserError, match="--point-spacing 0.6"):
        prompt_points(10, 10, 5, spacing=0.6)


def test_as_rgb_uint8_converts_gray_rgba_bgr_and_float():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = as_rgb_uint8(gray)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 2], gray)
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 200  # blue in BGR order
    assert as_rgb_uint8(bgr, channel_order="BGR")[0, 0].tolist() == [0, 0, 200]
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent -> composited on white
    assert as_rgb_uint8(rgba)[0, 0].tolist() == [255, 255, 255]
    assert as_rgb_uint8(np.full((2, 2), 0.5, dtype=np.float32))[0, 0].tolist() == [128, 128, 128]
    pil = as_rgb_uint8(Image.new("LA", (3, 2), (40, 255)))
    assert pil.shape == (2, 3, 3) and pil[0, 0].tolist() == [40, 40, 40]
    with pytest.raises(ValueError, match="HxW"):
        as_rgb_uint8(np.zeros((2, 2, 2), dtype=np.uint8))
