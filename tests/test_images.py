"""Decoding: every format to upright 8-bit RGB, broken files to a reason."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lookalike import images
from imagefactory import (pattern, png_header_only, write_bad_files, write_exif_rotated,
                          write_formats)


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    return write_formats(tmp_path_factory.mktemp("formats"))


def decode_file(path, size=None):
    return images.decode(path.read_bytes(), size)


@pytest.mark.parametrize("kind", ["jpeg", "png", "gif", "bmp", "tiff", "webp", "ppm", "pgm",
                                  "cmyk", "grey", "tiff16", "tiff_float", "tiff_multipage",
                                  "png16", "heic", "avif"])
def test_every_format_decodes_to_rgb_of_its_own_size(formats, kind):
    if kind not in formats:
        pytest.fail(f"this Pillow cannot write {kind}; the test set-up is incomplete")
    out = decode_file(formats[kind])
    assert out.pixels.dtype == np.uint8
    assert out.pixels.shape == (64, 96, 3)
    assert (out.width, out.height) == (96, 64)


def test_colour_formats_keep_the_picture(formats):
    want = pattern().astype(int)
    for kind, tolerance in [("png", 0), ("bmp", 0), ("tiff", 0), ("ppm", 0), ("jpeg", 6),
                            ("webp", 12), ("cmyk", 8)]:
        got = decode_file(formats[kind]).pixels.astype(int)
        assert np.abs(got - want).mean() <= tolerance, kind


def test_resizing_squashes_to_the_model_input(formats):
    out = decode_file(formats["jpeg"], size=224)
    assert out.pixels.shape == (224, 224, 3)
    assert (out.width, out.height) == (96, 64)  # the original size is still reported


def test_ico_gives_its_largest_image(formats):
    out = decode_file(formats["ico"])
    assert out.pixels.shape == (64, 64, 3)


def test_16_bit_is_stretched_by_its_own_range_not_clipped(formats):
    px = decode_file(formats["png16"]).pixels[..., 0]
    # Values 1000..3000: convert("RGB") would clip all of them to 255.
    assert px.min() == 0 and px.max() == 255
    assert len(np.unique(px)) > 200
    assert np.all(np.diff(px[:, 0].astype(int)) >= 0)  # the ramp is kept, monotone


def test_float_tiff_is_stretched_by_its_own_range(formats):
    px = decode_file(formats["tiff_float"]).pixels[..., 0]
    assert px.min() == 0 and px.max() == 255


def test_multipage_and_animated_give_the_first_frame(formats):
    first = decode_file(formats["tiff_multipage"]).pixels
    assert np.array_equal(first, pattern(seed=1))
    gif = decode_file(formats["gif"]).pixels
    assert gif.std() > 20  # the patterned first frame, not the flat second one


def test_transparency_is_composited_on_white(formats):
    pal = decode_file(formats["palette_alpha"]).pixels
    assert tuple(pal[0, 0]) == (255, 255, 255)        # transparent green -> white
    assert tuple(pal[16, 16]) == (200, 0, 0)          # opaque red stays
    rgba = decode_file(formats["rgba"]).pixels
    assert tuple(rgba[0, 0]) == (255, 255, 255)
    assert tuple(rgba[16, 16]) == (0, 0, 255)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    upright = pattern(96, 64)
    png = write_exif_rotated(tmp_path / f"r{orientation}.png", upright, orientation)
    out = decode_file(png)
    assert (out.width, out.height) == (96, 64)
    assert np.array_equal(out.pixels, upright)
    jpg = write_exif_rotated(tmp_path / f"r{orientation}.jpg", upright, orientation, quality=95)
    out = decode_file(jpg, size=48)
    assert (out.width, out.height) == (96, 64)
    want = np.asarray(Image.fromarray(upright).resize((48, 48), Image.Resampling.LANCZOS))
    assert np.abs(out.pixels.astype(int) - want).mean() < 8


def test_large_jpeg_is_drafted_but_still_close_to_a_full_decode(tmp_path):
    big = Image.fromarray(pattern(96, 64)).resize((1600, 1200), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    fast = decode_file(path, size=224)
    full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.LANCZOS))
    assert (fast.width, fast.height) == (1600, 1200)
    assert np.abs(fast.pixels.astype(int) - full).mean() < 3


def test_tiny_image_is_upscaled(formats):
    out = decode_file(formats["tiny"], size=32)
    assert out.pixels.shape == (32, 32, 3)
    assert tuple(out.pixels[5, 5]) == (10, 200, 30)


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file"),
    ("truncated_jpeg", "truncated or corrupt"),
    ("truncated_png", "truncated or corrupt"),
    ("text", "not an image"),
    ("bomb", "too many pixels"),
])
def test_bad_files_are_refused_with_a_reason(tmp_path, kind, reason):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(images.ImageSkipped) as info:
        images.decode(path.read_bytes(), 224)
    assert reason in info.value.reason


def test_pixel_limit_is_a_setting(formats):
    data = formats["png"].read_bytes()
    with pytest.raises(images.ImageSkipped, match="too many pixels"):
        images.decode(data, 32, max_pixels=1000)
    assert images.read_size(png_header_only(50, 40)) == (50, 40)


_GOOD = None


def _good_bytes() -> bytes:
    global _GOOD
    if _GOOD is None:
        import io

        buf = io.BytesIO()
        Image.fromarray(pattern(40, 30)).save(buf, "PNG")
        _GOOD = buf.getvalue()
    return _GOOD


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=16)).map(
        lambda t: _good_bytes()[: t[0]] + t[1] + _good_bytes()[t[0] + len(t[1]):]),
    st.integers(0, 2500).map(lambda n: _good_bytes()[:n]),
))
def test_random_and_mutated_bytes_decode_or_skip_with_a_reason(data):
    try:
        out = images.decode(data, 32)
    except images.ImageSkipped as exc:
        assert exc.reason
    else:
        assert out.pixels.shape == (32, 32, 3) and out.pixels.dtype == np.uint8
