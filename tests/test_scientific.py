"""Scientific images: OME-TIFF stacks (z, t, channels, pyramid levels), percentile windows,
per-channel vectors, very large images read reduced; the options kept with the collection."""

import io

import numpy as np
import pytest
import tifffile

import lookalike
from lookalike.ingest import decode as images
from lookalike.ingest.reading import (
    ReadingOptionError,
    ReadingOptions,
    parse_channels,
    parse_window,
    parse_z,
)

MODEL = "squeezenet"  # the fastest model

T, Z, C, Y, X = 2, 3, 4, 48, 64


def stack_values():
    """(T, Z, C, Y, X) uint16 where every plane says which it is: channel c lights the c-th
    quarter of the columns, at a brightness of 1000 * (1 + t) + 100 * z."""
    values = np.full((T, Z, C, Y, X), 10, np.uint16)
    for t in range(T):
        for z in range(Z):
            for c in range(C):
                values[t, z, c, :, c * 16:(c + 1) * 16] = 1000 * (1 + t) + 100 * z
    return values


def ome_tiff(values, axes="TZCYX", levels=2, **options) -> bytes:
    """An OME-TIFF with `levels` pyramid levels (each half the size) in SubIFDs."""
    out = io.BytesIO()
    with tifffile.TiffWriter(out, ome=True) as tif:
        tif.write(values, metadata={"axes": axes}, subifds=levels - 1, **options)
        for level in range(1, levels):
            step = 2 ** level
            tif.write(values[..., ::step, ::step], subfiletype=1, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def stack():
    return ome_tiff(stack_values())


def lit_columns(picture, colour):
    """The quarters of the columns (0-3) that are bright in one colour of the picture."""
    row = picture[Y // 2, :, colour].astype(int)
    return [q for q in range(4) if row[q * 16 + 8] > 128]


def test_the_first_three_channels_of_a_stack_are_red_green_and_blue(stack):
    out = images.decode(stack)
    assert (out.width, out.height) == (X, Y)
    assert [lit_columns(out.pixels, c) for c in range(3)] == [[0], [1], [2]]


def test_channels_are_chosen_and_coloured(stack):
    out = images.decode(stack, reading=ReadingOptions(channels=(3, 1)))
    assert [lit_columns(out.pixels, c) for c in range(3)] == [[3], [1], []]
    blue = images.decode(stack, reading=ReadingOptions(channels=(2,), colours=("magenta",)))
    assert [lit_columns(blue.pixels, c) for c in range(3)] == [[2], [], [2]]


def test_z_plane_time_point_and_projections(stack):
    values = stack_values()
    for z in (0, 2):
        planes = images.stacks.tiff_planes(stack, ReadingOptions(z=z, t=1), None, 10**8)
        assert planes is not None
        np.testing.assert_array_equal(planes.values[0], values[1, z, 0])
    highest = images.stacks.tiff_planes(stack, ReadingOptions(z="max"), None, 10**8)
    np.testing.assert_array_equal(highest.values[1], values[0].max(axis=0)[1])
    mean = images.stacks.tiff_planes(stack, ReadingOptions(z="mean", t=1), None, 10**8)
    np.testing.assert_allclose(mean.values[2], values[1].mean(axis=0)[2])


def test_per_channel_gives_each_channel_as_a_grey_picture(stack):
    out = images.decode(stack, 32, reading=ReadingOptions(channels=(0, 1, 2, 3),
                                                          per_channel=True))
    assert out.channels.shape == (4, 32, 32, 3)
    assert out.for_model is out.channels
    for c in range(4):
        grey = out.channels[c]
        assert np.array_equal(grey[..., 0], grey[..., 2])
        assert [q for q in range(4) if grey[16, q * 8 + 4, 0] > 128] == [c]


def test_a_percentile_window_keeps_one_hot_pixel_from_darkening_the_rest(tmp_path):
    values = np.tile(np.arange(1000, 1064, dtype=np.uint16), (48, 1))
    values[0, 0] = 65535                       # one hot pixel
    data = ome_tiff(values, axes="YX", levels=1)
    default = images.decode(data).pixels[..., 0]
    assert default[10, 63] == 255 and default[10, 0] == 0           # 0.1..99.9 %: a full ramp
    whole_range = images.decode(data, reading=ReadingOptions(window=(0, 100))).pixels[..., 0]
    assert whole_range[10, 63] < 5                                  # min..max: all dark


def test_a_level_of_the_pyramid_is_read_when_the_image_is_over_the_pixel_limit(stack):
    out = images.decode(stack, max_pixels=X * Y // 4)               # level 1 fits
    assert out.pixels.shape == (Y // 2, X // 2, 3) and (out.width, out.height) == (X, Y)
    assert images.read_size(stack, max_pixels=X * Y // 4) == (X, Y)
    smallest = images.decode(stack, 8)                              # enough for 8 pixels
    assert smallest.pixels.shape == (8, 8, 3)


def test_a_tiff_without_levels_over_the_limit_is_averaged_in_bands_of_rows():
    values = np.arange(120 * 160, dtype=np.uint16).reshape(120, 160)
    out = io.BytesIO()
    tifffile.imwrite(out, values, rowsperstrip=8)
    planes = images.stacks.tiff_planes(out.getvalue(), ReadingOptions(), None,
                                       max_pixels=120 * 160 // 16)
    want = values.reshape(30, 4, 40, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(planes.values[0], want)
    assert (planes.width, planes.height) == (160, 120)


@pytest.mark.parametrize("reading, reason", [
    (ReadingOptions(channels=(0, 7)), r"no channel 7 \(--channels\); the image has 4 channels"),
    (ReadingOptions(z=3), r"no z plane 3 \(--z\); the image has 3 z planes \(0-2\)"),
    (ReadingOptions(t=2), r"no time point 2 \(--t\)"),
])
def test_what_the_image_does_not_have_is_one_plain_reason(stack, reading, reason):
    with pytest.raises(images.ImageSkipped, match=reason):
        images.decode(stack, 16, reading=reading)


def test_an_ordinary_image_has_channels_too(tmp_path):
    from PIL import Image

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    swapped = images.decode(buffer.getvalue(), reading=ReadingOptions(channels=(2, 1, 0)))
    assert swapped.pixels[0, 0].tolist() == [0, 0, 200]
    with pytest.raises(images.ImageSkipped, match="no channel 3"):
        images.decode(buffer.getvalue(), reading=ReadingOptions(channels=(3,)))
    with pytest.raises(images.ImageSkipped, match="no z plane 1"):
        images.decode(buffer.getvalue(), reading=ReadingOptions(z=1))


@pytest.mark.parametrize("text", ["5,1", "a,b", "0,101", "5", "-1,50", "1,2,3"])
def test_a_window_must_be_two_increasing_percentiles(text):
    with pytest.raises(ReadingOptionError, match=r"^--window: .* is not two increasing "
                                                 r"percentiles in 0\.\.100; give LOW,HIGH"):
        parse_window(text)


def test_channel_lists_and_planes_are_checked():
    assert parse_channels("0, 1,2") == ((0, 1, 2), None)
    assert parse_channels("0=blue,4=Magenta") == ((0, 4), ("blue", "magenta"))
    assert parse_z("MAX") == "max" and parse_z("2") == 2
    for text in ("0,x", "0=purple", "0=blue,1", ""):
        with pytest.raises(ReadingOptionError, match="^--channels: "):
            parse_channels(text)
    with pytest.raises(ReadingOptionError, match="^--z: 'top' is neither"):
        parse_z("top")
    with pytest.raises(ReadingOptionError, match="do not fit in red, green and blue"):
        ReadingOptions(channels=(0, 1, 2, 3))
    with pytest.raises(ReadingOptionError, match="given twice"):
        ReadingOptions(channels=(1, 1))
    with pytest.raises(ReadingOptionError, match="--per-channel embeds the channels given"):
        ReadingOptions(per_channel=True)


def test_options_round_trip_and_key_the_vectors():
    options = ReadingOptions(z="max", channels=(0, 2), colours=("blue", "red"), window=(1, 99))
    assert ReadingOptions.from_json(options.to_json()) == options
    assert ReadingOptions().vector_key("squeezenet") == "squeezenet"
    key = options.vector_key("squeezenet")
    assert key.startswith("squeezenet~") and key != ReadingOptions(z="mean").vector_key("x")
    assert options.describe() == "--z max --channels 0=blue,2=red --window 1,99"


# -- a collection of stacks -------------------------------------------------------------------

@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """Six OME-TIFF stacks: three conditions (which channel is lit), two fields each."""
    folder = tmp_path_factory.mktemp("plate")
    rng = np.random.default_rng(5)
    for condition in range(3):
        for field in range(2):
            values = rng.integers(50, 200, (1, 2, 4, 64, 64)).astype(np.uint16)
            values[:, :, condition, 16:48, 16:48] += 3000 + 500 * field
            (folder / f"c{condition}_f{field}.ome.tif").write_bytes(ome_tiff(values, levels=1))
    return folder


@pytest.mark.slow
def test_per_channel_vectors_are_kept_apart_and_outside_references_read_alike(plate, tmp_path):
    from lookalike.models import get_model_info

    db = tmp_path / "plate.db"
    reading = ReadingOptions(z="max", channels=(0, 1, 2, 3), per_channel=True)
    col = lookalike.Collection.index([plate], db=db, model=MODEL, reading=reading)
    key = reading.vector_key(MODEL)
    assert col.last_report.embedded == 6 and col.models == {key: 6}
    assert col.vectors()[1].shape == (6, 4 * get_model_info(MODEL).dim)
    col.close()

    with lookalike.Collection.open(db) as col:       # the options stay with the collection
        assert col.reading == reading and col.default_model == key
        col.add([plate], model=MODEL)
        assert col.last_report.unchanged == 6
        found = col.nearest([plate / "c1_f0.ome.tif"], k=1, model=MODEL)
        assert found.paths[0].endswith("c1_f1.ome.tif")
        outside = tmp_path / "outside.ome.tif"                 # embedded the collection's way
        outside.write_bytes((plate / "c2_f1.ome.tif").read_bytes())
        assert col.nearest([outside], k=1).paths[0].endswith("c2_f1.ome.tif")
        col.add([plate], model=MODEL, reading=ReadingOptions())  # plain: keyed apart
        assert col.models == {key: 6, MODEL: 6}


@pytest.mark.slow
def test_cli_refuses_bad_options_in_one_line(tmp_path, plate):
    from test_cli import run

    db = tmp_path / "c.db"
    for options, message in [(["--window", "9,1"], "--window: '9,1' is not two increasing"),
                             (["--per-channel"], "--per-channel embeds the channels given"),
                             (["--z", "top"], "--z: 'top' is neither")]:
        proc = run("index", plate, "--db", db, "-q", *options, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("lookalike: error: " + message)
        assert proc.stderr.count("\n") == 1 and not db.exists()


def test_thumbnails_read_the_stack_the_collection_s_way(stack):
    from PIL import Image

    from lookalike.formats.thumbnails import make_thumbnail

    reading = ReadingOptions(channels=(3,), colours=("red",))
    picture = np.asarray(Image.open(io.BytesIO(make_thumbnail(stack, 64, reading))))
    assert picture.shape == (Y, X, 3)
    assert [lit_columns(picture, c) for c in range(3)] == [[3], [], []]
    assert reading.picture_key(b"h" * 16) != ReadingOptions().picture_key(b"h" * 16) == b"h" * 16
