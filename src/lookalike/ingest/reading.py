"""How a collection reads scientific images: which z plane (or a projection), which time
point, which channels become the picture, and the percentile window that maps 16-bit and float
samples to 8 bits. One `ReadingOptions` belongs to a collection (kept in its settings), so that
re-indexing, outside references and thumbnails all read images the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..errors import LookalikeError

#: Percentiles of each channel's samples mapped to black and white: the 0.1 % darkest and
#: brightest pixels are clipped, so that one hot pixel does not leave the rest of a 16-bit
#: micrograph dark (a min/max stretch does).
DEFAULT_WINDOW = (0.1, 99.9)

#: Colours a channel may be shown in (`--channels 0=blue,1=green,4=magenta`), as RGB weights.
COLOURS = {
    "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0), "magenta": (1.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
    "orange": (1.0, 0.5, 0.0), "grey": (1.0, 1.0, 1.0), "white": (1.0, 1.0, 1.0),
}

#: The colours of up to three channels given without any: red, green, blue (one: grey).
_PLAIN = {1: ("grey",), 2: ("red", "green"), 3: ("red", "green", "blue")}

PROJECTIONS = ("max", "mean")

#: The collection setting that keeps its options (JSON).
READING_SETTING = "reading"


class ReadingOptionError(LookalikeError):
    """Reading options that cannot be used (a bad --channels, --z, --window, ...)."""


@dataclass(frozen=True)
class ReadingOptions:
    """`z`: a plane number or "max"/"mean" (a projection of the stack); `t`: the time point;
    `channels`: the channels to show (None: the image's own grey or colour, as any image);
    `colours`: one colour name per channel (None: red, green, blue in order); `per_channel`:
    embed each channel as a grey image and join the vectors; `window`: low and high
    percentiles for 16-bit and float samples."""

    z: int | str = 0
    t: int = 0
    channels: tuple[int, ...] | None = None
    colours: tuple[str, ...] | None = None
    per_channel: bool = False
    window: tuple[float, float] = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        check_z(self.z)
        if not isinstance(self.t, int) or self.t < 0:
            raise ReadingOptionError(f"--t: {self.t!r} is not a time point (0, 1, 2, ...)")
        check_window(self.window)
        _check_channels(self.channels, self.colours, self.per_channel)

    @property
    def is_default(self) -> bool:
        return self == ReadingOptions()

    @property
    def selects(self) -> bool:
        """Whether these options choose planes or channels (beyond the window)."""
        return (self.z, self.t, self.channels, self.per_channel) != (0, 0, None, False)

    def shown_colours(self) -> tuple[tuple[float, float, float], ...]:
        """The RGB weights of each chosen channel in the picture (per-channel vectors of more
        than three channels given without colours: the first three are shown)."""
        assert self.channels is not None
        if self.colours is not None:
            return tuple(COLOURS[n] for n in self.colours)
        shown = _PLAIN[min(3, len(self.channels))]
        return tuple(COLOURS[n] for n in shown) + ((0.0, 0.0, 0.0),) * (len(self.channels) - 3)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ReadingOptions:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(z=raw["z"], t=raw["t"],
                   channels=None if raw["channels"] is None else tuple(raw["channels"]),
                   colours=None if raw["colours"] is None else tuple(raw["colours"]),
                   per_channel=bool(raw["per_channel"]), window=tuple(raw["window"]))

    def vector_key(self, model: str) -> str:
        """The name `model`'s vectors are stored under when images are read this way: the
        model's own name with the default options, else NAME~HASH8 (per-channel vectors are
        longer; other options give other pixels: never mixed with the plain model's)."""
        if self.is_default:
            return model
        return f"{model}~{hashlib.sha256(self.to_json().encode()).hexdigest()[:8]}"

    def picture_key(self, content_hash: bytes) -> bytes:
        """What a picture of an image read this way is cached under: its content hash with
        the default options, else a hash of both (other options, another picture)."""
        if self.is_default:
            return content_hash
        return hashlib.blake2b(content_hash + self.to_json().encode(), digest_size=16).digest()

    def describe(self) -> str:
        """The options in the command line's words."""
        parts = [] if self.z == 0 else [f"--z {self.z}"]
        parts += [] if self.t == 0 else [f"--t {self.t}"]
        if self.channels is not None:
            given = [f"{c}={n}" if self.colours else str(c)
                     for c, n in zip(self.channels, self.colours or self.channels)]
            parts.append("--channels " + ",".join(given))
        parts += ["--per-channel"] if self.per_channel else []
        if self.window != DEFAULT_WINDOW:
            parts.append(f"--window {self.window[0]:g},{self.window[1]:g}")
        return " ".join(parts) or "the defaults"


def base_model(key: str) -> str:
    """The model that made the vectors stored under `key` (see `vector_key`)."""
    return key.partition("~")[0]


def check_z(z) -> None:
    if isinstance(z, bool) or not (isinstance(z, int) and z >= 0 or z in PROJECTIONS):
        raise ReadingOptionError(f"--z: {z!r} is neither a plane number (0, 1, 2, ...) nor "
                                 "a projection (max or mean)")


def check_window(window, shown: str | None = None) -> None:
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not 0.0 <= low < high <= 100.0:
        raise ReadingOptionError(f"--window: {shown or _shown(window)} is not two increasing "
                                 "percentiles in 0..100; give LOW,HIGH, e.g. 0.1,99.9")


def _shown(window) -> str:
    if isinstance(window, (tuple, list)):
        return ",".join(str(v) for v in window)
    return repr(window)


def _check_channels(channels, colours, per_channel: bool) -> None:
    if channels is None:
        if colours is not None or per_channel:
            raise ReadingOptionError("--per-channel embeds the channels given by --channels: "
                                     "name them, e.g. --channels 0,1,2,3,4")
        return
    if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                           for c in channels):
        raise ReadingOptionError(f"--channels: {channels!r} is not a list of channel numbers "
                                 "(0, 1, 2, ...)")
    if len(set(channels)) != len(channels):
        raise ReadingOptionError(f"--channels: channel {_repeated(channels)} is given twice")
    if colours is not None:
        unknown = [n for n in colours if n not in COLOURS]
        if len(colours) != len(channels) or unknown:
            raise ReadingOptionError(f"--channels: give every channel a colour of "
                                     f"{', '.join(COLOURS)} (e.g. 0=blue,1=green,4=magenta)")
    elif len(channels) > 3 and not per_channel:
        raise ReadingOptionError(f"--channels: {len(channels)} channels do not fit in red, green "
                                 "and blue; give each a colour (e.g. 0=blue,1=green,2=red,"
                                 "3=magenta) or use --per-channel")


def _repeated(channels) -> int:
    return next(c for i, c in enumerate(channels) if c in channels[:i])


def parse_channels(text: str) -> tuple[tuple[int, ...], tuple[str, ...] | None]:
    """`0,1,2` or `0=blue,1=green,4=magenta` -> (channels, colours or None)."""
    channels: list[int] = []
    colours: list[str] = []
    for part in text.split(","):
        number, _, colour = part.strip().partition("=")
        if not number.strip().isdigit() or (colour and colour.strip().lower() not in COLOURS):
            raise ReadingOptionError(
                f"--channels: {text!r} is not a list of channel numbers, each with an optional "
                f"colour (e.g. 0,1,2 or 0=blue,1=green,4=magenta; colours: {', '.join(COLOURS)})")
        channels.append(int(number))
        colours.append(colour.strip().lower())
    if any(colours) and not all(colours):
        raise ReadingOptionError(f"--channels: {text!r} gives some channels a colour and not "
                                 "others; give every one a colour, or none")
    return tuple(channels), tuple(colours) if all(colours) else None


def parse_window(text: str) -> tuple[float, float]:
    """`LOW,HIGH` percentiles -> (low, high), checked."""
    parts = text.split(",")
    try:
        window = tuple(float(p) for p in parts)
    except ValueError:
        window = ()
    check_window(window if len(window) == 2 else (), repr(text))
    return window[0], window[1]


def parse_z(text: str) -> int | str:
    """A plane number, or `max` / `mean`."""
    value = text.strip().lower()
    z: int | str = int(value) if value.isdigit() else value
    check_z(z)
    return z


__all__ = ["COLOURS", "DEFAULT_WINDOW", "PROJECTIONS", "READING_SETTING", "ReadingOptionError",
           "ReadingOptions", "base_model", "parse_channels", "parse_window", "parse_z"]
