"""The user's own ONNX image models: a small JSON registry of their files and settings.

The registry is ``$LOOKALIKE_MODELS_FILE`` when that variable is set, else ``models.json`` in
``platformdirs.user_config_dir("lookalike")``. A model is checked on generated images when
added, and its file's sha256 is kept: its vectors are stored under ``NAME@HASH8`` (the first 8
hex digits), so vectors of a changed file are never mixed with the old ones, and a file that
changed since it was added is refused until it is added again (which gives it a new key).

A CLIP-style text tower may be paired with one of them (``text_models`` in the same file): it
is kept with the hashes of its file, its tokenizer and the image model's file it was checked
with, and searches only that file's vectors (``NAME@HASH8`` of the image model).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import platformdirs

from ..errors import LookalikeError
from ..fileio import write_atomically
from .runtime import Model, ModelInfo, ModelSettingError, load_onnx_model

MODELS_FILE_ENV = "LOOKALIKE_MODELS_FILE"
#: Letters, digits and . _ + - as for imported vectors' names; no "@", which starts the hash.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_FORMAT = 1


class ModelChangedError(LookalikeError):
    """A registered model's file is gone or no longer the file that was added."""


@dataclass(frozen=True)
class OwnModel:
    """One registered model: where its file is, its sha256 and the settings it was added with."""

    name: str
    path: str
    sha256: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str
    layout: str
    output: str | None
    dim: int
    size: int = 0        # the file's size and modification time when added: a cheap first
    mtime_ns: int = 0    # look at whether it changed before hashing it

    @property
    def key(self) -> str:
        """The name its vectors are stored under: a changed file gets a new key."""
        return f"{self.name}@{self.sha256[:8]}"

    def info(self, text: OwnTextModel | None = None) -> ModelInfo:
        return ModelInfo(name=self.key, dim=self.dim, input_size=self.input_size,
                         licence="yours", package="", installed=Path(self.path).is_file(),
                         install_hint="", description=f"your own model, from {self.path}",
                         is_default=False, file=self.path,
                         text_file=text.path if text is not None else "")


@dataclass(frozen=True)
class OwnTextModel:
    """A text tower paired with the image model ``pairs_with``: its file, its tokenizer's, and
    the sha256 of the image model's file it was checked with."""

    pairs_with: str
    image_sha256: str
    path: str
    sha256: str
    tokenizer: str
    tokenizer_sha256: str
    context_length: int
    output: str | None
    size: int = 0
    mtime_ns: int = 0

    @property
    def key(self) -> str:
        """The key of the image vectors it searches: its image model's file when added."""
        return f"{self.pairs_with}@{self.image_sha256[:8]}"


def registry_path() -> Path:
    override = os.environ.get(MODELS_FILE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("lookalike")) / "models.json"


def read_registry() -> tuple[dict[str, OwnModel], dict[str, OwnTextModel]]:
    """(image models by name in lower case, text towers by their image model's name in lower
    case); both empty when there is no registry."""
    path = registry_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        listed = data["models"]
        images = {m["name"].lower(): OwnModel(**{**m, "mean": tuple(m["mean"]),
                                                  "std": tuple(m["std"])}) for m in listed}
        texts = {t["pairs_with"].lower(): OwnTextModel(**t) for t in data.get("text_models", [])}
        return images, texts
    except FileNotFoundError:
        return {}, {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LookalikeError(f"{path}: the list of your models cannot be read ({exc}); fix or "
                             f"delete it, then add your models again") from None


def read_all() -> dict[str, OwnModel]:
    """Every registered image model by its name in lower case (none when there is no
    registry)."""
    return read_registry()[0]


def read_text_all() -> dict[str, OwnTextModel]:
    """Every registered text tower by the name of its image model in lower case."""
    return read_registry()[1]


def write_registry(models: dict[str, OwnModel],
               texts: dict[str, OwnTextModel] | None = None) -> None:
    """Write the registry; the text towers as they are unless ``texts`` is given (a tower
    whose image model is gone is dropped)."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = read_text_all() if texts is None else texts
    listed = [asdict(m) for m in sorted(models.values(), key=lambda m: m.name.lower())]
    towers = [asdict(t) for key, t in sorted(texts.items()) if key in models]
    text = json.dumps({"format": _FORMAT, "models": listed, "text_models": towers},
                      indent=2) + "\n"
    write_atomically(path, text.encode("utf-8"), durable=True)


def find(name: str) -> tuple[OwnModel, str] | None:
    """The registered model ``name`` (or ``NAME@HASH8``) and the hash tag asked for ("" when
    none), or None when no model of the user's has that name."""
    base, _, tag = str(name).strip().partition("@")
    found = read_all().get(base.lower())
    return None if found is None else (found, tag.lower())


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def register(path: str | os.PathLike, name: str, input_size: int, mean: Sequence[float],
             std: Sequence[float], channel_order: str = "RGB", layout: str = "NCHW",
             output: str | None = None, *, reserved: Sequence[str] = ()) -> OwnModel:
    """Check the model on generated images and add it to the registry under ``name``.

    Adding the same file again under its name replaces the entry (and, if the file changed,
    gives its vectors a new key); another file under a registered name is refused."""
    source = Path(path).expanduser().resolve()
    models = read_all()
    _check_name(name, source, models, reserved)
    sha256 = file_sha256(source) if source.is_file() else ""  # before: what is checked is kept
    model = load_onnx_model(source, input_size, mean, std, channel_order, layout, output,
                            threads=1, name=name)
    dim = check_runs(model, source)
    stat = source.stat()
    entry = OwnModel(name=name, path=str(source), sha256=sha256,
                     size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                     input_size=input_size,
                     mean=tuple(float(x) for x in np.asarray(mean, float).reshape(-1)),
                     std=tuple(float(x) for x in np.asarray(std, float).reshape(-1)),
                     channel_order=channel_order.upper(), layout=layout.upper(),
                     output=output, dim=dim)
    models[name.lower()] = entry
    write_registry(models)
    return entry


def _check_name(name: str, source: Path, models: dict[str, OwnModel],
                reserved: Sequence[str]) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ModelSettingError(f"name {name!r}: use letters, digits and . _ + - (up to 64, "
                                "starting with a letter or digit)")
    if name.lower() in {r.lower() for r in reserved}:
        raise ModelSettingError(f"name {name!r} is a built-in model's; choose another --name")
    held = models.get(name.lower())
    if held is not None and held.path != str(source):
        raise ModelSettingError(f"name {name!r} is already your model from {held.path}; remove "
                                f"it first (`lookalike models remove {held.name}`) or choose "
                                "another --name")


def _test_images(size: int) -> np.ndarray:
    """Two different photo-like images: smooth colour ramps with some fixed noise."""
    ramp = np.linspace(0, 255, size)
    first = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None],
                                         np.full((size, size), 128.0)), axis=-1)
    noise = np.random.default_rng(0).normal(0, 20, (2, size, size, 3))
    return np.clip(np.stack([first, first[::-1, ::-1]]) + noise, 0, 255).astype(np.uint8)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def check_runs(model: Model, source: Path) -> int:
    """The length of the model's vectors, once it gave finite vectors of one length for two
    generated images, alone and (unless its batch is fixed at 1) together."""
    images = _test_images(model.info.input_size)
    try:
        alone = [model.embed(images[i:i + 1]) for i in range(len(images))]
    except Exception as exc:
        raise ModelSettingError(f"{source}: the model fails on a {model.info.input_size} px "
                                f"test image ({_first_line(exc)}); check --input-size and "
                                "--layout") from None
    try:
        together = model.embed(images)
    except Exception as exc:
        raise ModelSettingError(f"{source}: the model's output is not one vector per image in "
                                f"a batch of two ({_first_line(exc)}); choose another --output "
                                "or export it with a batch dimension") from None
    dims = {a.shape[1] for a in alone}
    if len(dims) != 1 or together.shape != (2, alone[0].shape[1]) or alone[0].shape[1] == 0:
        raise ModelSettingError(f"{source}: the model's output is not one vector per image (got "
                                f"{alone[0].size} numbers for one image, shape "
                                f"{together.shape} for two); choose another --output")
    if not (np.isfinite(together).all() and all(np.isfinite(a).all() for a in alone)):
        raise ModelSettingError(f"{source}: the model gives NaN or infinite values on a test "
                                "image; check --mean and --std, or export it again")
    if not np.allclose(together, np.concatenate(alone), rtol=1e-3, atol=1e-4):
        raise ModelSettingError(f"{source}: the model gives other vectors for an image in a "
                                "batch than alone; export it in inference (eval) mode")
    return int(alone[0].shape[1])


def unregister(name: str) -> OwnModel:
    """Remove ``name`` and its text tower from the registry (their files and any vectors
    stay)."""
    models = read_all()
    key = str(name).strip().partition("@")[0].lower()
    if key not in models:
        listed = ", ".join(m.name for m in models.values()) or "none"
        raise LookalikeError(f"no model of yours is called {name!r} (yours: {listed})")
    removed = models.pop(key)
    write_registry(models)
    return removed


def verify(entry: OwnModel, always_hash: bool = False) -> None:
    """Raise ModelChangedError when the file is gone or is not the one added: hashed when its
    size or modification time changed (or ``always_hash``), so a lookup by name stays cheap."""
    try:
        stat = os.stat(entry.path)
    except OSError:
        raise ModelChangedError(f"model {entry.name}: its file {entry.path} is gone; put it "
                                f"back, or `lookalike models remove {entry.name}`") from None
    if not always_hash and (stat.st_size, stat.st_mtime_ns) == (entry.size, entry.mtime_ns):
        return
    if file_sha256(entry.path) != entry.sha256:
        raise ModelChangedError(
            f"model {entry.name}: {entry.path} has changed since it was added; add it again "
            f"(`lookalike models add {entry.path} --name {entry.name} ...`): its vectors then "
            "get a new key and are never mixed with the old file's")


def load(entry: OwnModel, threads: int | None = None) -> Model:
    """The registered model ready to embed, once its file is checked to be the one added."""
    verify(entry, always_hash=True)
    model = load_onnx_model(entry.path, entry.input_size, entry.mean, entry.std,
                            entry.channel_order, entry.layout, entry.output, threads,
                            name=entry.key)
    model.info = entry.info()
    return model
