"""A restricted unpickler for official YOLOv7 checkpoints (``torch.save`` zip format).

The official release files pickle a whole ``models.yolo.Model``. We never import that code and never call an
arbitrary global: every global the pickle names is looked up in :data:`ALLOWED` and mapped to either

* an *inert stand-in* (:class:`StandIn`): an object that only records the arguments and state pickle hands it
  (all ``nn.Module`` classes, numpy arrays/dtypes, torch storage types), or
* a small, safe function written here (tensor rebuild from raw storage bytes, ``OrderedDict``, ``set``,
  ``_codecs.encode`` limited to latin-1 strings).

Any other global raises :class:`~tracker_core.errors.UnsafePickleError` naming it, before anything runs.
Storages are read from the zip archive by :meth:`CheckpointUnpickler.persistent_load` as plain bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tracker_core.errors import UnsafePickleError, WeightsError

# Largest data.pkl we agree to parse (the official yolov7.pt has ~200 kB).
MAX_PICKLE_BYTES = 64 * 1024 * 1024
# Largest total of tensor bytes we agree to read (the official yolov7.pt holds 75 MB of fp16, 150 MB as fp32).
MAX_STORAGE_BYTES = 512 * 1024 * 1024
# A storage may unpack to at most this many times its size in the archive (torch.save stores them uncompressed;
# a deflated storage of zeros is a memory bomb: 1 MB on disk, 1 GB in memory).
MAX_COMPRESSION_RATIO = 16

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class StandIn:
    """Inert replacement for an allow-listed class: records constructor arguments and pickled state.

    ``pickle`` builds objects with ``cls.__new__(cls, *args)`` (NEWOBJ), ``cls(*args)`` (REDUCE) and
    ``obj.__setstate__(state)`` (BUILD); here all three only store what they receive.
    """

    qualname = "StandIn"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in {self.qualname}>"

    # Helpers used by the converter to walk an ``nn.Module`` stand-in.
    def attr(self, name: str, default: Any = None) -> Any:
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict, slotstate)
        return state.get(name, default) if isinstance(state, dict) else default


class StorageType:
    """Stand-in for ``torch.<Kind>Storage``: it only names a dtype."""

    def __init__(self, name: str) -> None:
        if name not in STORAGE_DTYPES:
            raise UnsafePickleError(f"checkpoint names an unsupported storage type torch.{name}")
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(f"checkpoint tries to call torch.{self.name}")


def _stand_in_class(module: str, name: str) -> type[StandIn]:
    return type(name, (StandIn,), {"qualname": f"{module}.{name}", "__module__": __name__})


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """Safe re-implementation: a strided view of a storage we read ourselves, bounds-checked."""
    if not isinstance(storage, torch.Tensor):
        raise WeightsError("corrupt checkpoint: a tensor does not refer to a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and isinstance(storage_offset, int)):
        raise WeightsError("corrupt checkpoint: malformed tensor header")
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in (*size, *stride)):
        raise WeightsError("corrupt checkpoint: malformed tensor size/stride")
    numel = storage.numel()
    if any(s == 0 for s in size):
        return storage.new_empty(size)
    elements = 1
    for s in size:
        elements *= s
    if elements > numel:  # zero / overlapping strides: copying it would allocate more than the file holds
        raise WeightsError(
            f"corrupt checkpoint: a tensor of {elements} elements views a storage of {numel} (overlapping strides)"
        )
    last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
    if storage_offset < 0 or last >= numel:
        raise WeightsError("corrupt checkpoint: a tensor reaches past the end of its storage")
    return storage.as_strided(size, stride, storage_offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise WeightsError("corrupt checkpoint: a parameter does not hold a tensor")
    return data


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, 'latin1')``; nothing else is allowed."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("checkpoint calls _codecs.encode with unexpected arguments")
    return obj.encode("latin1")


def _make_set(items: Any = ()) -> set[Any]:
    if not isinstance(items, list | tuple):
        raise UnsafePickleError("checkpoint builds a set from an unexpected object")
    return set(items)


def _make_ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    if args and not (len(args) == 1 and isinstance(args[0], list | tuple)):
        raise UnsafePickleError("checkpoint builds an OrderedDict from an unexpected object")
    return collections.OrderedDict(*args)


def _numpy_reconstruct(*args: Any) -> StandIn:
    return _stand_in_class("numpy", "ndarray")()


_MODULE_CLASSES = {
    "models.yolo": ["Model", "IDetect", "Detect"],
    "models.common": [
        "Conv",
        "Concat",
        "MP",
        "SP",
        "SPPCSPC",
        "RepConv",
        "ImplicitA",
        "ImplicitM",
    ],
    "torch.nn.modules.conv": ["Conv2d"],
    "torch.nn.modules.batchnorm": ["BatchNorm2d"],
    "torch.nn.modules.activation": ["SiLU", "LeakyReLU", "ReLU", "Identity"],
    "torch.nn.modules.linear": ["Identity"],
    "torch.nn.modules.pooling": ["MaxPool2d"],
    "torch.nn.modules.upsampling": ["Upsample"],
    "torch.nn.modules.container": ["Sequential", "ModuleList"],
}

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")


def _build_allow_list() -> dict[tuple[str, str], Callable[..., Any] | type]:
    table: dict[tuple[str, str], Callable[..., Any] | type] = {}
    for module, names in _MODULE_CLASSES.items():
        for name in names:
            table[(module, name)] = _stand_in_class(module, name)
    for name in STORAGE_DTYPES:
        table[("torch", name)] = StorageType(name)
    table[("torch._utils", "_rebuild_tensor_v2")] = _rebuild_tensor_v2
    table[("torch._utils", "_rebuild_parameter")] = _rebuild_parameter
    table[("collections", "OrderedDict")] = _make_ordered_dict
    table[("__builtin__", "set")] = _make_set
    table[("builtins", "set")] = _make_set
    table[("_codecs", "encode")] = _codecs_encode
    for module in _NUMPY_MODULES:
        table[(module, "_reconstruct")] = _numpy_reconstruct
        table[(module, "ndarray")] = _stand_in_class(module, "ndarray")
        table[(module, "dtype")] = _stand_in_class(module, "dtype")
        table[(module, "scalar")] = _stand_in_class(module, "scalar")
    table[("numpy", "dtype")] = _stand_in_class("numpy", "dtype")
    return table


ALLOWED = _build_allow_list()


class CheckpointUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from :data:`ALLOWED`; storages come from ``archive``."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, torch.Tensor] = {}
        self._storage_bytes = 0

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"checkpoint names the pickle global {module}.{name}, which is not on the allow-list; "
                "refusing to load it (nothing was executed)"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise WeightsError(f"corrupt checkpoint: unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if (
            not isinstance(storage_type, StorageType)
            or not isinstance(key, str)
            or not isinstance(numel, int)
        ):
            raise WeightsError("corrupt checkpoint: malformed storage reference")
        if key in self._storages:
            return self._storages[key]
        name = f"{self._prefix}data/{key}"
        itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
        try:
            info = self._archive.getinfo(name)
        except KeyError as exc:
            raise WeightsError(f"corrupt checkpoint: storage {name} is missing from the archive") from exc
        size = info.file_size
        if size != numel * itemsize:  # checked before reading: no oversized allocation for a lying header
            raise WeightsError(
                f"corrupt checkpoint: storage {name} holds {size} bytes, expected {numel * itemsize}"
            )
        if size > MAX_COMPRESSION_RATIO * info.compress_size + 65536:
            raise WeightsError(
                f"corrupt checkpoint: storage {name} unpacks {info.compress_size} compressed bytes to {size} "
                "(a decompression bomb; torch.save stores tensors uncompressed)"
            )
        self._storage_bytes += size
        if self._storage_bytes > MAX_STORAGE_BYTES:
            raise WeightsError(
                f"checkpoint holds more than {MAX_STORAGE_BYTES} bytes of tensors: not a YOLOv7 checkpoint"
            )
        try:
            raw = self._archive.read(name)
        except KeyError as exc:
            raise WeightsError(f"corrupt checkpoint: storage {name} is missing from the archive") from exc
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise WeightsError(f"corrupt checkpoint: cannot read storage {name}: {exc}") from exc
        if len(raw) != numel * itemsize:
            raise WeightsError(
                f"corrupt checkpoint: storage {name} holds {len(raw)} bytes, expected {numel * itemsize}"
            )
        if numel == 0:
            tensor = torch.empty(0, dtype=storage_type.dtype)
        else:
            tensor = torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)
        self._storages[key] = tensor
        return tensor


@dataclass
class RawCheckpoint:
    """What :func:`read_checkpoint` returns: the unpickled top-level object (stand-ins inside)."""

    obj: Any
    prefix: str


def read_checkpoint(path: str) -> RawCheckpoint:
    """Unpickle an official ``torch.save`` zip checkpoint with the restricted unpickler.

    Raises :class:`WeightsError` for anything that is not such a file (truncated, corrupt, foreign) and
    :class:`UnsafePickleError` for a pickle that names a global outside the allow-list.
    """
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise WeightsError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise WeightsError(f"{path}: is a directory, not a checkpoint") from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise WeightsError(
            f"{path}: not a torch.save zip checkpoint (corrupt, truncated or a foreign file): {exc}"
        ) from exc
    with archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise WeightsError(
                f"{path}: not a torch.save checkpoint (no single <name>/data.pkl in the archive)"
            )
        prefix = pkls[0][: -len("data.pkl")]
        info = archive.getinfo(pkls[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise WeightsError(f"{path}: data.pkl is {info.file_size} bytes, larger than allowed")
        try:
            data = archive.read(pkls[0])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise WeightsError(f"{path}: corrupt checkpoint, cannot read data.pkl: {exc}") from exc
        unpickler = CheckpointUnpickler(data, archive, prefix)
        try:
            obj = unpickler.load()
        except (UnsafePickleError, WeightsError):
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
        ) as exc:
            raise WeightsError(f"{path}: corrupt checkpoint pickle: {type(exc).__name__}: {exc}") from exc
        except RecursionError as exc:
            raise WeightsError(f"{path}: checkpoint pickle is nested too deeply") from exc
    return RawCheckpoint(obj=obj, prefix=prefix)
