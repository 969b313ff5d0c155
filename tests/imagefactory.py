"""Real image files of many formats, good and broken, written by the tests themselves."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def pattern(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """An RGB picture with a clear up/down and left/right, so rotations are detectable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (255 * x / max(1, width - 1)).astype(np.uint8)
    img[..., 1] = (255 * y / max(1, height - 1)).astype(np.uint8)
    img[..., 2] = rng.integers(0, 64, (height, width), dtype=np.uint8)
    img[: height // 4, : width // 4] = (255, 255, 0)  # a yellow block top-left
    return img


def save(path: Path, im: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


def write_formats(folder: Path) -> dict[str, Path]:
    """One good file per supported format; returns name -> path."""
    rgb = Image.fromarray(pattern())
    out = {
        "jpeg": save(folder / "photo.jpg", rgb, quality=95),
        "png": save(folder / "plain.png", rgb),
        "gif": save(folder / "anim.gif", rgb.convert("P"), save_all=True,
                    append_images=[Image.new("P", rgb.size, 3)], duration=100, loop=0),
        "bmp": save(folder / "bitmap.bmp", rgb),
        "tiff": save(folder / "eight.tif", rgb),
        "webp": save(folder / "web.webp", rgb, quality=90),
        "ppm": save(folder / "netpbm.ppm", rgb),
        "pgm": save(folder / "grey.pgm", rgb.convert("L")),
        "ico": save(folder / "icon.ico", rgb.resize((64, 64)), sizes=[(64, 64)]),
        "cmyk": save(folder / "cmyk.jpg", rgb.convert("CMYK"), quality=95),
        "grey": save(folder / "grey.png", rgb.convert("L")),
        "tiny": save(folder / "tiny.png", Image.new("RGB", (1, 1), (10, 200, 30))),
    }
    out["png16"] = write_png16(folder / "deep.png")
    out["tiff16"] = save(folder / "deep16.tif", Image.fromarray(
        np.arange(64 * 96, dtype=np.uint16).reshape(64, 96) * 3 + 1000))
    out["tiff_float"] = save(folder / "float.tif", Image.fromarray(
        np.linspace(-1.5, 2.5, 64 * 96, dtype=np.float32).reshape(64, 96), mode="F"))
    pages = [Image.fromarray(pattern(seed=1)), Image.new("RGB", (96, 64), (0, 0, 255))]
    out["tiff_multipage"] = save(folder / "pages.tiff", pages[0], save_all=True,
                                 append_images=pages[1:])
    out["palette_alpha"] = write_palette_with_transparency(folder / "palette.png")
    out["rgba"] = write_rgba(folder / "alpha.png")
    try:
        out["heic"] = save(folder / "phone.heic", rgb, quality=90)
    except Exception:  # pragma: no cover - pillow-heif without an HEVC encoder
        pass
    try:
        out["avif"] = save(folder / "modern.avif", rgb, quality=90)
    except Exception:  # pragma: no cover
        pass
    return out


def write_png16(path: Path) -> Path:
    """A 16-bit grey PNG using only 1000..3000 (as a 12-bit camera would)."""
    values = np.linspace(1000, 3000, 64 * 96).reshape(64, 96).astype(np.uint16)
    return save(path, Image.fromarray(values))


def write_palette_with_transparency(path: Path) -> Path:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([0, 128, 0] + [200, 0, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (8, 8, 24, 24))
    return save(path, im, transparency=0)  # the green background is fully transparent


def write_rgba(path: Path) -> Path:
    arr = np.zeros((32, 32, 4), np.uint8)
    arr[..., 1] = 255                       # green everywhere, transparent...
    arr[8:24, 8:24] = (0, 0, 255, 255)      # ...except an opaque blue square
    return save(path, Image.fromarray(arr, "RGBA"))


def write_exif_rotated(path: Path, upright: np.ndarray, orientation: int = 6, **kw) -> Path:
    """Store `upright` rotated, with the EXIF orientation that shows it upright again."""
    im = Image.fromarray(upright)
    # Orientation 6 = "rotate 90 clockwise to view", so store it rotated 90 counter-clockwise.
    stored = {6: im.transpose(Image.Transpose.ROTATE_90),
              8: im.transpose(Image.Transpose.ROTATE_270),
              3: im.transpose(Image.Transpose.ROTATE_180)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(path, stored, exif=exif, **kw)


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Files named like images that are not usable ones; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good_jpeg = io.BytesIO()
    Image.fromarray(pattern(200, 150)).save(good_jpeg, "JPEG", quality=90)
    good_png = io.BytesIO()
    Image.fromarray(pattern(200, 150)).save(good_png, "PNG")
    out = {
        "empty": folder / "empty.jpg",
        "truncated_jpeg": folder / "truncated.jpg",
        "truncated_png": folder / "truncated.png",
        "text": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
    }
    out["empty"].write_bytes(b"")
    out["truncated_jpeg"].write_bytes(good_jpeg.getvalue()[: len(good_jpeg.getvalue()) // 2])
    out["truncated_png"].write_bytes(good_png.getvalue()[: len(good_png.getvalue()) // 2])
    out["text"].write_text("this is not a picture\n")
    out["bomb"].write_bytes(png_header_only(100_000, 100_000))
    return out


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


#: A regular file that open() refuses even to root: a write-only kernel setting.
UNOPENABLE = "/proc/sys/vm/drop_caches"


def write_hostile_folder(root: Path) -> tuple[dict[str, Path], dict[str, tuple[bytes, str]]]:
    """A folder mixing good images with every kind of bad entry named like an image.

    Returns (good: name -> path of every usable image, bad: name -> (path bytes, kind)).
    Good ones: every format of `write_formats`, an EXIF-rotated JPEG, a JPEG with corrupt
    EXIF data and a PNG whose name is not valid UTF-8. Bad ones: `write_bad_files`, a named
    pipe, a socket, a symbolic link to itself, a dangling link, a link to a file that root
    cannot open either, a sparse file larger than the indexer reads, a non-image whose name
    is not UTF-8; also a folder named like an image and a link from a sub-folder back up
    (both are walked, the loop only once).
    """
    import socket

    good = write_formats(root / "good")
    good["rotated"] = write_exif_rotated(root / "good" / "rotated.jpg", pattern(96, 64, seed=4),
                                         6, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 1
    broken_exif = exif.tobytes()[:-3]  # an IFD cut short: Pillow warns, the image is fine
    good["corrupt_exif"] = save(root / "good" / "odd-exif.jpg", Image.fromarray(pattern(seed=6)),
                                exif=broken_exif, quality=90)
    latin1 = os.fsencode(root / "good") + b"/caf\xe9.png"
    Image.fromarray(pattern(seed=7)).save(latin1, "PNG")
    good["latin1_name"] = Path(os.fsdecode(latin1))

    bad_dir = root / "bad"
    bad = {k: (os.fsencode(p), k) for k, p in write_bad_files(bad_dir).items()}

    def entry(name: str | bytes, kind: str) -> bytes:
        path = os.fsencode(bad_dir) + b"/" + os.fsencode(name)
        bad[kind] = (path, kind)
        return path

    os.mkfifo(entry("pipe.jpg", "pipe"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(entry("socket.png", "socket"))
    sock.close()  # the socket file stays
    os.symlink("loop.jpg", entry("loop.jpg", "link_loop"))
    os.symlink("nowhere.png", entry("dangling.png", "dangling"))
    os.symlink(UNOPENABLE, entry("locked.jpg", "unopenable"))
    with open(entry("huge.tif", "too_large"), "wb") as fh:
        fh.truncate(3 << 30)  # sparse: 3 GiB that take no room
    with open(entry(b"\xff\xfenot-utf8.jpg", "not_utf8_text"), "wb") as fh:
        fh.write(b"GIF89a and then nothing an image needs")
    (bad_dir / "folder.jpg").mkdir()
    Image.fromarray(pattern(seed=8)).save(bad_dir / "folder.jpg" / "inside.png")
    good["inside_folder_named_jpg"] = bad_dir / "folder.jpg" / "inside.png"
    os.symlink("..", root / "good" / "up")  # a folder loop: root/good/up/good/up/...
    return good, bad
