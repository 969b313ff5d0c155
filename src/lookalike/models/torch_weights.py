"""Read PyTorch weight files without torch, as NumPy arrays.

Only the legacy (pre-zip) format written by ``torch.save`` before torch 1.6 is read, which is
what the weight packages we use ship. A restricted unpickler builds tensors and ordered dicts and
refuses every other global, so a weight file cannot run code.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["UnsafeWeightsError", "load_legacy_state_dict"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch's typed storages as they appear in the pickle; the data that follows is little-endian
# (checked against the file's system info).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafeWeightsError(pickle.UnpicklingError):
    """A weight file asked for something other than plain tensors."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int
    view: tuple | None  # (view key, offset, size) for the old storage views


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        raise UnsafeWeightsError("a tensor in the weight file is not backed by a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                      tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeightsError(
            f"{self._source}: refusing to load {module}.{name}; "
            "only tensors and ordered dicts are allowed in a weight file"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeWeightsError(f"{self._source}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        return _StorageRef(str(key), storage_type.dtype, int(numel), view)


def _plain_load(file: IO[bytes], source: str) -> Any:
    """Unpickle one of the small header records, which may hold no globals at all."""

    class _NoGlobals(_RestrictedUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise UnsafeWeightsError(f"{source}: refusing to load {module}.{name} in the header")

    return _NoGlobals(file, source).load()


def _read_exact(file: IO[bytes], n: int, source: str) -> bytes:
    data = file.read(n)
    if len(data) != n:
        raise ValueError(f"{source}: the weight file is truncated")
    return data


def _tensor_from_storage(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    base = storages[ref.storage.key]
    if ref.storage.view is not None:
        # An old-style storage view: (view key, offset into the root, size).
        _view_key, view_offset, view_size = ref.storage.view
        base = base[int(view_offset):int(view_offset) + int(view_size)]
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, dtype=base.dtype.newbyteorder("="))
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= len(base):
        raise ValueError("a tensor in the weight file reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset:], shape=ref.shape,
        strides=[s * base.itemsize for s in ref.stride], writeable=False)
    return np.array(view, dtype=base.dtype.newbyteorder("="), order="C")


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _TensorRef):
        return _tensor_from_storage(obj, storages)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v, storages) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storages) for v in obj)
    return obj


def load_legacy_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy ``torch.save`` file and return its state dict as NumPy arrays.

    The file is five pickles in a row (magic number, protocol version, system info, the state
    dict, the sorted list of storage keys), then for each key an int64 element count and the
    raw little-endian data. Raises :class:`UnsafeWeightsError` if the state dict names any
    global other than tensor rebuilding, typed storages and ``collections.OrderedDict``.
    """
    source = os.fspath(path)
    with open(source, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == b"PK":
            raise ValueError(
                f"{source}: this is a zip-format torch file; only the legacy format is supported"
            )
        magic = _plain_load(f, source)
        if magic != LEGACY_MAGIC_NUMBER:
            raise ValueError(f"{source}: not a legacy torch weight file (bad magic number)")
        protocol = _plain_load(f, source)
        if protocol != LEGACY_PROTOCOL_VERSION:
            raise ValueError(f"{source}: unsupported torch file protocol {protocol!r}")
        sys_info = _plain_load(f, source)
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
            raise ValueError(f"{source}: big-endian torch files are not supported")
        state = _RestrictedUnpickler(f, source).load()
        keys = _plain_load(f, source)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise ValueError(f"{source}: malformed storage key list")

        refs: dict[str, _StorageRef] = {}
        _collect_storages(state, refs)
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", _read_exact(f, 8, source))
            ref = refs.get(key)
            if ref is None:
                raise ValueError(f"{source}: storage {key!r} is not used by any tensor")
            data = _read_exact(f, numel * ref.dtype.itemsize, source)
            storages[key] = np.frombuffer(data, dtype=ref.dtype)
    missing = set(refs) - set(storages)
    if missing:
        raise ValueError(f"{source}: storages {sorted(missing)} have no data")
    result = _materialise(state, storages)
    if not isinstance(result, dict):
        raise ValueError(f"{source}: the file does not hold a state dict")
    return result


def _collect_storages(obj: Any, refs: dict[str, _StorageRef]) -> None:
    if isinstance(obj, _TensorRef):
        refs.setdefault(obj.storage.key, obj.storage)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_storages(v, refs)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_storages(v, refs)
