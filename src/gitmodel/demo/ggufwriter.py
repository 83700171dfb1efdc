"""A minimal GGUF v3 writer: just what the demo checkpoints need.

Our own rather than the ``gguf`` package so that the demo's bytes (and so its
md5, which DVC and the tests pin) never depend on a third-party version.
Layout (ggml's docs/gguf.md): header, key/value metadata, tensor infos, padding
to the alignment, then the tensor data, each tensor padded to the alignment.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# Value types of the key/value section.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR_FORMATS = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
    FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}
GGML_TYPE_F32 = 0


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(vtype: int, value) -> bytes:
    if vtype == STRING:
        return _string(value)
    return struct.pack(_SCALAR_FORMATS[vtype], value)


def _padding(offset: int) -> bytes:
    return b"\x00" * (-offset % ALIGNMENT)


class GGUFWriter:
    """Collects metadata and F32 tensors, then writes them in one go.

    Keys and tensors are written in the order they were added: the order is
    part of the bytes, and callers add them in a fixed order.
    """

    def __init__(self) -> None:
        self._kv: list[bytes] = []
        self._tensors: list[tuple[str, np.ndarray]] = []

    def add(self, key: str, vtype: int, value) -> None:
        """A scalar or string key."""
        self._kv.append(_string(key) + struct.pack("<I", vtype) + _value(vtype, value))

    def add_array(self, key: str, item_type: int, values) -> None:
        """An array key (of scalars or strings)."""
        body = b"".join(_value(item_type, v) for v in values)
        self._kv.append(_string(key) + struct.pack("<IIQ", ARRAY, item_type, len(values)) + body)

    def add_tensor(self, name: str, array: np.ndarray) -> None:
        """An F32 tensor shaped like numpy (rows, cols); y = W @ x for a (out, in) matrix."""
        self._tensors.append((name, np.ascontiguousarray(array, dtype="<f4")))

    def write(self, path: Path) -> None:
        with open(path, "wb") as f:
            self._write(f)

    def _write(self, f: BinaryIO) -> None:
        header = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))
        infos = []
        offset = 0
        for name, array in self._tensors:
            # GGUF lists dimensions innermost first: numpy (rows, cols) is ne = (cols, rows).
            dims = tuple(reversed(array.shape))
            infos.append(_string(name) + struct.pack("<I", len(dims))
                         + b"".join(struct.pack("<Q", d) for d in dims)
                         + struct.pack("<IQ", GGML_TYPE_F32, offset))
            offset += array.nbytes + len(_padding(array.nbytes))
        head = header + b"".join(self._kv) + b"".join(infos)
        f.write(head + _padding(len(head)))
        for _, array in self._tensors:
            data = array.tobytes()
            f.write(data + _padding(len(data)))
