"""Decoding: every format to upright 8-bit RGB, broken files to a reason."""

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from imagefactory import (
    pattern,
    png_header_only,
    write_bad_files,
    write_exif_rotated,
    write_formats,
)
from lookalike.ingest import decode as images


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


# -- scientific TIFFs that Pillow cannot read (or misreads), through tifffile -------------------

def stretched(values, window=(0.1, 99.9)):
    """What the decoder should show: 8-bit by the default percentile window of the values'
    finite samples (NaN as black)."""
    v = np.asarray(values, np.float64)
    lo, hi = np.percentile(v[np.isfinite(v)], window)
    scaled = (np.where(np.isnan(v), lo, v) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ramp():
    y, x = np.mgrid[0:30, 0:40]
    return (x + 40 * y) / 1199.0           # 0..1, a different value in every pixel


def write_tiff(tmp_path, name, array, **options):
    import tifffile

    path = tmp_path / name
    tifffile.imwrite(path, array, **options)
    return path.read_bytes()


def test_planar_float64_multipage_tiff_gives_its_first_page_by_its_own_range(tmp_path, ramp):
    first = np.stack([ramp * 3 - 1, 2 - ramp, ramp ** 2])          # planar: (samples, y, x)
    data = write_tiff(tmp_path, "planar.tif", np.stack([first, first[::-1] * 50]),
                      photometric="rgb", planarconfig="separate")
    out = images.decode(data)
    assert (out.width, out.height) == (40, 30) and images.read_size(data) == (40, 30)
    np.testing.assert_array_equal(out.pixels, stretched(first.transpose(1, 2, 0)))
    assert images.decode(data, 16).pixels.shape == (16, 16, 3)


def test_scikit_image_multipage_rgb_tif_is_read(tmp_path):
    """scikit-image's own sample (planar float64, two pages) was skipped as "not an image"."""
    import tifffile
    from skimage.data import data_dir

    data = (Path(data_dir) / "multipage_rgb.tif").read_bytes()
    first = tifffile.imread(io.BytesIO(data), key=0)                # (3, 10, 10)
    out = images.decode(data)
    np.testing.assert_array_equal(out.pixels, stretched(np.moveaxis(first, 0, -1)))
    assert images.read_size(data) == (10, 10)


def test_16_bit_colour_tiff_is_stretched_by_its_own_range_not_cut_to_its_high_byte(tmp_path, ramp):
    rgb = np.stack([ramp, ramp * 0.5, ramp * 0.25]) * 40_000 + 1_000   # 1,000..41,000
    for planar in ("separate", "contig"):
        array = rgb if planar == "separate" else rgb.transpose(1, 2, 0)
        data = write_tiff(tmp_path, f"{planar}.tif", array.astype(np.uint16), photometric="rgb",
                          planarconfig=planar)
        got = images.decode(data).pixels
        np.testing.assert_array_equal(got, stretched(rgb.astype(np.uint16).transpose(1, 2, 0)))
        assert got.max() == 255                                     # not 160, Pillow's high byte


def test_float32_grey_tiff_with_nan_shows_nan_as_its_minimum(tmp_path, ramp):
    grey = (ramp * 7 - 3).astype(np.float32)
    grey[:5, :5] = np.nan
    data = write_tiff(tmp_path, "nan.tif", grey)
    got = images.decode(data).pixels
    want = stretched(grey)
    np.testing.assert_array_equal(got, np.repeat(want[..., None], 3, axis=2))
    assert (got[:5, :5] == 0).all() and got.max() == 255


def test_tiff_with_more_than_four_samples_shows_the_first_three(tmp_path, ramp):
    channels = np.stack([ramp, 1 - ramp, ramp * 0.5, ramp, ramp])   # (5, y, x)
    eight = np.rint(channels * 255).astype(np.uint8)
    for planar in ("separate", "contig"):
        array = eight if planar == "separate" else eight.transpose(1, 2, 0)
        data = write_tiff(tmp_path, f"five-{planar}.tif", array, photometric="minisblack",
                          planarconfig=planar)
        np.testing.assert_array_equal(images.decode(data).pixels, eight[:3].transpose(1, 2, 0))


def test_16_bit_rgba_tiff_is_composited_on_white(tmp_path, ramp):
    rgba = np.zeros((4, 30, 40), np.uint16)
    rgba[0] = 50_000                                                  # red where opaque
    rgba[3, :, 20:] = 65_535                                          # right half opaque
    rgba[1, 0, 0] = 100                                               # a second level of green
    data = write_tiff(tmp_path, "rgba16.tif", rgba, photometric="rgb", planarconfig="separate",
                      extrasamples=["unassalpha"])
    got = images.decode(data).pixels
    assert (got[:, :20] == 255).all()                                 # transparent: white
    assert (got[1:, 20:] == [255, 0, 0]).all()


def test_tiff_orientation_is_applied_through_tifffile(tmp_path, ramp):
    data = write_tiff(tmp_path, "rotated.tif", ramp, extratags=[(274, "H", 1, 6, True)])
    out = images.decode(data)
    assert (out.width, out.height) == (30, 40) and images.read_size(data) == (30, 40)
    np.testing.assert_array_equal(out.pixels[..., 0], np.rot90(stretched(ramp), -1))


def test_tiff_size_is_checked_before_its_pixels_are_read(tmp_path):
    import tifffile

    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((2, 2), np.float64))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:                             # declare 60000 x 60000
        for tag in ("ImageWidth", "ImageLength"):
            t = tif.pages.first.tags[tag]
            width = 2 if t.dtype == tifffile.DATATYPE.SHORT else 4
            data[t.valueoffset:t.valueoffset + width] = (60_000).to_bytes(width, "little")
    # Over the limit, a TIFF is read reduced (stacks.py); refused beyond MAX_OVER_LIMIT times it.
    for read in (images.read_size, images.decode):
        with pytest.raises(images.ImageSkipped, match="too many pixels"):
            read(bytes(data), max_pixels=10_000)
    five = write_tiff(tmp_path, "five.tif", np.zeros((5, 30, 40)), planarconfig="separate",
                      photometric="minisblack")
    with pytest.raises(images.ImageSkipped, match="decompression bomb"):   # 40 bytes a pixel
        images.decode(five, max_pixels=1_200)
    assert images.decode(five, max_pixels=20_000).pixels.shape == (30, 40, 3)


def test_the_viewer_makes_thumbnails_of_tiffs_that_pillow_cannot_read(tmp_path, ramp):
    from lookalike.formats.thumbnails import make_thumbnail

    data = write_tiff(tmp_path, "planar.tif", np.stack([ramp] * 3), photometric="rgb",
                      planarconfig="separate")
    thumb = Image.open(io.BytesIO(make_thumbnail(data, 20)))
    assert thumb.size == (20, 15) and thumb.format == "JPEG"


def test_damaged_scientific_tiff_is_skipped_with_a_reason(tmp_path, ramp):
    data = write_tiff(tmp_path, "planar.tif", np.stack([ramp] * 3), photometric="rgb",
                      planarconfig="separate")
    with pytest.raises(images.ImageSkipped) as info:
        images.decode(data[:len(data) // 2])
    assert "TIFF" in info.value.reason or "truncated" in info.value.reason


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file"),
    ("truncated_jpeg", "truncated file"),
    ("truncated_png", "truncated file"),
    ("text", "not an image"),
    ("bomb", "too many pixels"),
])
def test_bad_files_are_refused_with_a_reason(tmp_path, kind, reason):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(images.ImageSkipped) as info:
        images.decode(path.read_bytes(), 224)
    assert reason in info.value.reason


def test_pixel_limit_is_a_setting(formats, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after
    data = formats["png"].read_bytes()
    with pytest.raises(images.ImageSkipped, match="too many pixels"):
        images.decode(data, 32, max_pixels=1000)
    assert images.read_size(png_header_only(50, 40)) == (50, 40)
    # The reason says how many pixels and which limit, whichever check refused the image.
    with pytest.raises(images.ImageSkipped) as info:
        images.read_size(png_header_only(100_000, 100_000))
    assert info.value.reason == ("too many pixels (10,000,000,000; the limit is 268,435,456), "
                                 "refused as a possible decompression bomb")
    with pytest.raises(images.ImageSkipped) as info:
        images.read_size(png_header_only(20_000, 15_000))
    assert info.value.reason == ("too many pixels (20000x15000 = 300,000,000; the limit is "
                                 "268,435,456), refused as a possible decompression bomb")
    # A higher limit is honoured: Pillow's own guard (which refused 300 megapixels whatever
    # --max-pixels said) does not stand in its way.
    assert images.read_size(png_header_only(20_000, 15_000), 400_000_000) == (20_000, 15_000)
    assert images.read_size(png_header_only(30_000, 30_000), 10**9) == (30_000, 30_000)


def _encoded(fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(pattern(40, 30, seed=3))
    if fmt == "GIF":  # animated: the decoder must stop at the first frame
        options = dict(save_all=True, append_images=[im.rotate(90)], duration=50, **options)
    im.save(buf, fmt, **options)
    return buf.getvalue()


#: Valid files of each format the fuzzer starts from (small, so that every byte gets hit).
SEEDS = {fmt: _encoded(fmt, **options) for fmt, options in [
    ("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("TIFF", {}),
    ("TIFF", {"compression": "tiff_deflate"}), ("WEBP", {"quality": 80}), ("BMP", {})]}
SEED_BYTES = list(SEEDS.values()) + [_encoded("JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08"
                                                                  b"\x00\x01\x01\x12\x00\x03\x00\x00"
                                                                  b"\x00\x01\x00\x06\x00\x00")]


@st.composite
def mutated_images(draw) -> bytes:
    """A valid image file of some format with bits flipped, bytes overwritten, inserted or
    cut, or the file truncated: what a bad disk, a broken download or a hostile upload gives."""
    data = bytearray(draw(st.sampled_from(SEED_BYTES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "cut", "truncate"]))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


# A limit well under the default keeps a mutated header that declares a huge canvas from
# allocating gigabytes in the test; the default limit is covered by the bomb tests above.
FUZZ_MAX_PIXELS = 4_000_000


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damage it reads past
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_random_and_mutated_bytes_decode_or_skip_with_a_reason(data):
    """Whatever the bytes, the only outcomes are pixels or ImageSkipped with a reason: no other
    exception, no hang. The header read (used for images whose vector is cached) agrees."""
    try:
        out = images.decode(data, 32, max_pixels=FUZZ_MAX_PIXELS)
    except images.ImageSkipped as exc:
        assert exc.reason and exc.reason == str(exc)
    else:
        assert out.pixels.shape == (32, 32, 3) and out.pixels.dtype == np.uint8
        assert out.width >= 1 and out.height >= 1
        assert images.read_size(data, FUZZ_MAX_PIXELS) == (out.width, out.height)
    try:
        images.read_size(data, FUZZ_MAX_PIXELS)
    except images.ImageSkipped as exc:
        assert exc.reason
