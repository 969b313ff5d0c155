"""scikit-image's microscopy samples, written by the test as 16-bit OME-TIFF stacks and read
with the z, projection, time and channel options. Only the samples inside its wheel are used:
`immunohistochemistry` (a slide, split into its stains) and `cell` (phase contrast);
`cells3d`, `human_mitosis`, `kidney` and `lily` are fetched from the network by pooch."""

import io

import numpy as np
import pytest
import tifffile
from skimage import color, data, filters

from lookalike.ingest import decode as images
from lookalike.ingest.reading import ReadingOptions
from lookalike.ingest.stacks import tiff_planes

FOCUS = 2  # the in-focus plane of the stack; the planes before it are ever more blurred


def to_uint16(x):
    x = (x - x.min()) / (x.max() - x.min())
    return np.rint(x * 60000).astype(np.uint16)


@pytest.fixture(scope="module")
def slide():
    """(Z, C, Y, X) uint16: the haematoxylin (nuclei) and DAB stains of the
    `immunohistochemistry` slide (colour deconvolution), 3 z planes: in focus at FOCUS,
    blurred by 2 px per plane away from it."""
    stains = color.rgb2hed(data.immunohistochemistry()[:256, :256])
    channels = [to_uint16(stains[..., 0]), to_uint16(stains[..., 2])]
    planes = [[np.rint(filters.gaussian(c.astype(float), sigma=2 * (FOCUS - z),
                                        preserve_range=True)).astype(np.uint16)
               if z < FOCUS else c for c in channels] for z in range(FOCUS + 1)]
    values = np.array(planes)
    out = io.BytesIO()
    tifffile.imwrite(out, values, ome=True, metadata={"axes": "ZCYX"}, photometric="minisblack")
    return values, out.getvalue()


def planes(data_, **options):
    found = tiff_planes(data_, ReadingOptions(**options), None, 10**8)
    assert found is not None
    return found.values


def sharpness(grey):
    g = grey.astype(float)
    return float(np.var(g[1:-1, 2:] + g[1:-1, :-2] + g[2:, 1:-1] + g[:-2, 1:-1]
                        - 4 * g[1:-1, 1:-1]))


def test_a_max_projection_is_brighter_than_a_blurred_plane_where_the_nuclei_are(slide):
    values, tiff = slide
    nuclei = values[FOCUS, 0] > np.percentile(values[FOCUS, 0], 95)
    first = planes(tiff, z=0, channels=(0,))[0]
    highest = planes(tiff, z="max", channels=(0,))[0]
    mean = planes(tiff, z="mean", channels=(0,))[0]
    np.testing.assert_array_equal(first, values[0, 0])
    np.testing.assert_array_equal(highest, values[:, 0].max(axis=0))
    assert highest[nuclei].mean() > 1.2 * first[nuclei].mean()
    assert first[nuclei].mean() < mean[nuclei].mean() < highest[nuclei].mean()
    np.testing.assert_array_equal(planes(tiff, z=FOCUS, channels=(0,))[0], values[FOCUS, 0])


def test_the_plane_in_focus_is_the_sharpest_picture(slide):
    values, tiff = slide
    shown = [images.decode(tiff, reading=ReadingOptions(z=z, channels=(0,))).pixels[..., 0]
             for z in range(FOCUS + 1)]
    assert sharpness(shown[0]) < sharpness(shown[1]) < sharpness(shown[FOCUS])


def correlation(a, b):
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_each_stain_comes_out_in_its_colour(slide):
    values, tiff = slide
    nuclei, dab = values[0, 0], values[0, 1]
    both = images.decode(tiff).pixels                    # default: channels as red, green
    assert both.shape == (256, 256, 3) and not both[..., 2].any()
    assert correlation(both[..., 0], nuclei) > 0.9 and correlation(both[..., 1], dab) > 0.9
    assert correlation(both[..., 0], dab) < 0.5
    blue = images.decode(tiff, reading=ReadingOptions(channels=(0,), colours=("blue",))).pixels
    assert not blue[..., :2].any() and correlation(blue[..., 2], nuclei) > 0.9
    each = images.decode(tiff, 64, reading=ReadingOptions(channels=(0, 1), per_channel=True))
    assert each.channels.shape == (2, 64, 64, 3)
    with pytest.raises(images.ImageSkipped, match=r"no channel 2 \(--channels\); the image has "
                                                  r"2 channels \(0-1\)"):
        images.decode(tiff, reading=ReadingOptions(channels=(2,)))


def test_a_time_point_of_the_cell_photo_is_chosen():
    cell = data.cell().astype(np.uint16) * 256           # phase contrast, 8 bits made 16
    out = io.BytesIO()
    tifffile.imwrite(out, np.array([cell, cell[:, ::-1]]), ome=True, metadata={"axes": "TYX"})
    first = images.decode(out.getvalue()).pixels
    later = images.decode(out.getvalue(), reading=ReadingOptions(t=1)).pixels
    assert first.shape == (*cell.shape, 3) and correlation(first[..., 0], cell) > 0.99
    np.testing.assert_array_equal(later, first[:, ::-1])
    with pytest.raises(images.ImageSkipped, match=r"no time point 2 \(--t\); the image has 2 "
                                                  r"time points \(0-1\)"):
        images.decode(out.getvalue(), reading=ReadingOptions(t=2))
