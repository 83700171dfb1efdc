"""Bounds-checked GGUF header reader, run before any file reaches llama.cpp.

Reads the header only (metadata and tensor table, never tensor data) and checks
every count, length and offset against the bytes the file really has before it
is used, so a truncated, corrupt or hostile file raises :class:`InvalidGGUF`
naming the problem and its byte offset, and never makes us allocate on the
file's word. Little-endian GGUF v2 and v3 only.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""
from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gitmodel import gguf_checks
from gitmodel.errors import InvalidGGUF

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
# llama.cpp stores tensor names in a char[64] with its NUL terminator.
MAX_TENSOR_NAME_BYTES = 63
# llama.cpp sets no limit; real keys are a few dozen bytes, and this one keeps a
# corrupt length from making us read megabytes into a dict key.
MAX_KEY_BYTES = 65535
# Arrays longer than this are summarised (128k-token vocabularies stay on disk).
MAX_KEPT_ARRAY_LENGTH = 64
# String values longer than this (never seen in practice: chat templates are
# tens of KB) are summarised rather than held in memory.
MAX_KEPT_STRING_BYTES = 1 << 20
# The spec allows arrays of arrays; llama.cpp rejects them, we allow a little
# nesting but bound it so a crafted file cannot exhaust Python's stack.
MAX_ARRAY_NESTING = 3
INT64_MAX = (1 << 63) - 1

_FIXED_HEADER_BYTES = 4 + 4 + 8 + 8  # magic, version, tensor count, kv count
# Smallest possible entries: empty name/key, no dims, one-byte value.
_MIN_TENSOR_ENTRY_BYTES = 8 + 4 + 4 + 8
_MIN_KV_ENTRY_BYTES = 8 + 4 + 1
_MIN_NESTED_ARRAY_BYTES = 4 + 8
_MIN_STRING_BYTES = 8
# Header bytes are pulled in windows of this size; at most one window reaches
# past the header into tensor data, which is never interpreted.
_WINDOW_BYTES = 64 * 1024

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# GGUF metadata value types: id -> (name, codec). 8 and 9 are string and array.
_VALUE_STRING = 8
_VALUE_ARRAY = 9
_SCALAR_TYPES: dict[int, tuple[str, struct.Struct]] = {
    0: ("uint8", struct.Struct("<B")),
    1: ("int8", struct.Struct("<b")),
    2: ("uint16", struct.Struct("<H")),
    3: ("int16", struct.Struct("<h")),
    4: ("uint32", struct.Struct("<I")),
    5: ("int32", struct.Struct("<i")),
    6: ("float32", struct.Struct("<f")),
    7: ("bool", struct.Struct("<B")),
    10: ("uint64", struct.Struct("<Q")),
    11: ("int64", struct.Struct("<q")),
    12: ("float64", struct.Struct("<d")),
}
_VALUE_TYPE_NAMES = {
    **{type_id: name for type_id, (name, _) in _SCALAR_TYPES.items()},
    _VALUE_STRING: "string",
    _VALUE_ARRAY: "array",
}
_UINT32_TYPE = 4
_BOOL_TYPE = 7


@dataclass(frozen=True)
class GGMLType:
    """One ggml tensor type: ``block_size`` elements take ``type_size`` bytes."""

    type_id: int
    name: str
    block_size: int
    type_size: int


_QK_K = 256
# ggml/include/ggml.h `enum ggml_type` and the block structs of ggml-common.h
# (mirrored by gguf-py's GGML_QUANT_SIZES, which a test cross-checks). Ids
# 4, 5, 31-33 and 36-38 were removed from GGUF files and are rejected.
GGML_TYPES: dict[int, GGMLType] = {
    t.type_id: t
    for t in (
        GGMLType(0, "F32", 1, 4),
        GGMLType(1, "F16", 1, 2),
        GGMLType(2, "Q4_0", 32, 2 + 16),
        GGMLType(3, "Q4_1", 32, 2 + 2 + 16),
        GGMLType(6, "Q5_0", 32, 2 + 4 + 16),
        GGMLType(7, "Q5_1", 32, 2 + 2 + 4 + 16),
        GGMLType(8, "Q8_0", 32, 2 + 32),
        GGMLType(9, "Q8_1", 32, 4 + 4 + 32),
        GGMLType(10, "Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
        GGMLType(11, "Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
        GGMLType(12, "Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
        GGMLType(13, "Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
        GGMLType(14, "Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
        GGMLType(15, "Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
        GGMLType(16, "IQ2_XXS", _QK_K, 2 + _QK_K // 4),
        GGMLType(17, "IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
        GGMLType(18, "IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
        GGMLType(19, "IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
        GGMLType(20, "IQ4_NL", 32, 2 + 16),
        GGMLType(21, "IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
        GGMLType(22, "IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
        GGMLType(23, "IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
        GGMLType(24, "I8", 1, 1),
        GGMLType(25, "I16", 1, 2),
        GGMLType(26, "I32", 1, 4),
        GGMLType(27, "I64", 1, 8),
        GGMLType(28, "F64", 1, 8),
        GGMLType(29, "IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
        GGMLType(30, "BF16", 1, 2),
        GGMLType(34, "TQ1_0", _QK_K, 2 + 4 * 13),
        GGMLType(35, "TQ2_0", _QK_K, 2 + 64),
        GGMLType(39, "MXFP4", 32, 1 + 16),
        GGMLType(40, "NVFP4", 64, 4 + 32),
        GGMLType(41, "Q1_0", 128, 2 + 16),
    )
}

# llama.h `enum llama_ftype`, as written to general.file_type, without the
# LLAMA_FTYPE_MOSTLY_ / LLAMA_FTYPE_ALL_ prefixes. Retired ids are left out:
# quantization then falls back to the dominant tensor type.
LLAMA_FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}


@dataclass(frozen=True)
class ArraySummary:
    """Stands in for a metadata array too long to keep (e.g. a vocabulary)."""

    type_name: str
    length: int


@dataclass(frozen=True)
class StringSummary:
    """Stands in for a metadata string too long to keep."""

    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the table; ``offset`` is relative to the data section."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    type_name: str
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        return _product(self.dims)


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says, every field checked against the file."""

    path: Path
    file_size: int
    version: int
    tensor_count: int
    kv_count: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    # key -> (value type, offset of the value, offset just past it): where a
    # check that needs a long array (a vocabulary) finds it in the file.
    value_spans: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def parameter_count(self) -> int:
        return sum(tensor.n_elements for tensor in self.tensors)

    @property
    def quantization(self) -> str | None:
        """llama.cpp's file type name, else the type holding the most parameters."""
        file_type = self.metadata.get("general.file_type")
        if _is_int(file_type) and file_type in LLAMA_FILE_TYPES:
            return LLAMA_FILE_TYPES[file_type]
        elements_by_type: Counter[str] = Counter()
        for tensor in self.tensors:
            elements_by_type[tensor.type_name] += tensor.n_elements
        if not elements_by_type:
            return None
        return elements_by_type.most_common(1)[0][0]

    @property
    def context_length(self) -> int | None:
        if self.architecture is None:
            return None
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if _is_int(value) else None

    def to_meta(self) -> dict[str, Any]:
        """The small JSON-able summary recorded in lineage."""
        return {
            "architecture": self.architecture,
            "parameters": self.parameter_count,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "gguf_version": self.version,
        }


def read_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read and check the header of the GGUF file at ``path``.

    Raises :class:`InvalidGGUF` for any malformation; ``OSError`` if the file
    cannot be opened at all.
    """
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        info = _HeaderParser(file, path, file_size).parse()
        gguf_checks.check_for_llama_cpp(info, file)
        return info


def read_header(path: str | os.PathLike[str]) -> GGUFInfo:
    """:func:`read_info` without the checks of what llama.cpp can load: every bound of the header
    is still checked, for a command that reads any GGUF file (``weights-diff``) and never loads it."""
    with open(path, "rb") as file:
        return _HeaderParser(file, path, os.fstat(file.fileno()).st_size).parse()


def _product(dims: tuple[int, ...]) -> int:
    result = 1
    for dim in dims:
        result *= dim
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _quantity(n: int) -> str:
    """``n`` as a reader would say it: 2^60 and 10^12 rather than 19 digits."""
    if n >= 1 << 20 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    digits = str(n)
    if n >= 10**6 and digits.rstrip("0") == "1":
        return f"10^{len(digits) - 1}"
    return digits


def _shape_text(dims: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(dim) for dim in dims) + "]"


class _HeaderParser:
    """Walks the header once, through a window of bytes re-read on demand."""

    def __init__(self, file: BinaryIO, path: str | os.PathLike[str], file_size: int):
        self.file = file
        self.path = path
        self.file_size = file_size
        self.pos = 0
        self.window = b""
        self.window_start = 0

    # -- low level ------------------------------------------------------

    def fail(self, problem: str, offset: int | None = None) -> InvalidGGUF:
        return InvalidGGUF(self.path, problem, self.pos if offset is None else offset)

    def remaining(self) -> int:
        return self.file_size - self.pos

    def _window_index(self, n: int) -> int:
        """Index in ``window`` of the ``n`` bytes at ``pos``; caller checked the bounds."""
        index = self.pos - self.window_start
        if index < 0 or index + n > len(self.window):
            self.file.seek(self.pos)
            self.window = self.file.read(max(n, _WINDOW_BYTES))
            self.window_start = self.pos
            index = 0
            if len(self.window) < n:
                raise self.fail("file shrank while it was being read")
        return index

    def unpack(self, codec: struct.Struct, what: str) -> Any:
        if codec.size > self.remaining():
            raise self.fail(f"{what} runs past the end of the file")
        index = self._window_index(codec.size)
        self.pos += codec.size
        return codec.unpack_from(self.window, index)[0]

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes, already checked to lie within the file."""
        index = self._window_index(n)
        self.pos += n
        return self.window[index : index + n]

    def string_bytes(self, where: str, max_bytes: int | None = None) -> bytes | int:
        """A GGUF string's bytes, or its length when it is over ``max_bytes`` (skipped)."""
        start = self.pos
        length = self.unpack(_U64, f"string length at {where}")
        if length > self.remaining():
            raise self.fail(
                f"string length {_quantity(length)} at {where} runs past the end of the file",
                start,
            )
        if max_bytes is not None and length > max_bytes:
            self.pos += length
            return length
        return self.take(length)

    # -- header ---------------------------------------------------------

    def parse(self) -> GGUFInfo:
        version, tensor_count, kv_count = self.parse_fixed_header()
        metadata, alignment, spans = self.parse_metadata(kv_count)
        tensors, offset_fields = self.parse_tensor_table(tensor_count, alignment)
        data_offset = -(-self.pos // alignment) * alignment
        self.check_tensor_data(tensors, offset_fields, data_offset)
        return GGUFInfo(
            path=Path(self.path),
            file_size=self.file_size,
            version=version,
            tensor_count=tensor_count,
            kv_count=kv_count,
            metadata=metadata,
            tensors=tensors,
            alignment=alignment,
            data_offset=data_offset,
            value_spans=spans,
        )

    def parse_fixed_header(self) -> tuple[int, int, int]:
        if self.file_size == 0:
            raise self.fail("file is empty", 0)
        magic = self.take(min(4, self.file_size))
        if magic != GGUF_MAGIC[: len(magic)]:
            raise self.fail(f"bad magic {magic!r} (expected {GGUF_MAGIC!r})", 0)
        if self.file_size < _FIXED_HEADER_BYTES:
            raise self.fail(
                f"truncated header: the file has {self.file_size} bytes, "
                f"the fixed header alone takes {_FIXED_HEADER_BYTES}",
                0,
            )
        version = self.unpack(_U32, "version")
        if version not in SUPPORTED_VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            if version & 0xFFFF == 0 and swapped in SUPPORTED_VERSIONS:
                problem = f"big-endian GGUF (version {swapped}) is not supported"
            else:
                problem = f"unsupported version {version} (supported: 2, 3)"
            raise self.fail(problem, 4)
        tensor_count = self.unpack(_U64, "tensor count")
        kv_count = self.unpack(_U64, "key/value count")
        # Each entry takes a minimum number of bytes, so the counts are bounded
        # by the file size before a single entry is read.
        room = self.remaining()
        if tensor_count * _MIN_TENSOR_ENTRY_BYTES > room:
            raise self.fail(
                f"tensor count {_quantity(tensor_count)} cannot fit in a "
                f"{self.file_size}-byte file (each entry takes at least "
                f"{_MIN_TENSOR_ENTRY_BYTES} bytes)",
                8,
            )
        room -= tensor_count * _MIN_TENSOR_ENTRY_BYTES
        if kv_count * _MIN_KV_ENTRY_BYTES > room:
            raise self.fail(
                f"key/value count {_quantity(kv_count)} cannot fit in a "
                f"{self.file_size}-byte file with {tensor_count} tensor{'' if tensor_count == 1 else 's'} (each "
                f"key/value takes at least {_MIN_KV_ENTRY_BYTES} bytes)",
                16,
            )
        return version, tensor_count, kv_count

    def parse_metadata(self, kv_count: int) -> tuple[dict[str, Any], int, dict[str, tuple[int, int, int]]]:
        metadata: dict[str, Any] = {}
        spans: dict[str, tuple[int, int, int]] = {}
        key_numbers: dict[str, int] = {}
        alignment = DEFAULT_ALIGNMENT
        for number in range(kv_count):
            key_start = self.pos
            raw_key = self.string_bytes(f"key #{number}", MAX_KEY_BYTES)
            if isinstance(raw_key, int):
                raise self.fail(
                    f"key #{number} is {raw_key} bytes long (limit {MAX_KEY_BYTES})", key_start
                )
            try:
                key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail(f"key #{number} is not valid UTF-8", key_start) from None
            if key in key_numbers:
                raise self.fail(
                    f"duplicate key {key!r} (keys #{key_numbers[key]} and #{number})", key_start
                )
            key_numbers[key] = number
            where = f"key {key!r}"
            type_start = self.pos
            value_type = self.unpack(_U32, f"value type at {where}")
            value_start = self.pos
            metadata[key] = self.parse_value(value_type, where, type_start, keep=True, depth=0)
            spans[key] = (value_type, value_start, self.pos)
            if key == "general.alignment":
                alignment = self.checked_alignment(value_type, metadata[key], value_start)
        return metadata, alignment, spans

    def checked_alignment(self, value_type: int, value: Any, value_start: int) -> int:
        if value_type != _UINT32_TYPE:
            type_name = _VALUE_TYPE_NAMES.get(value_type, str(value_type))
            raise self.fail(f"general.alignment must be a uint32, not {type_name}", value_start)
        if value == 0 or value & (value - 1):
            raise self.fail(f"general.alignment {value} is not a power of two", value_start)
        return value

    def parse_value(self, value_type: int, where: str, type_start: int, keep: bool, depth: int) -> Any:
        scalar = _SCALAR_TYPES.get(value_type)
        if scalar is not None:
            name, codec = scalar
            value = self.unpack(codec, f"{name} value at {where}")
            return value != 0 if value_type == _BOOL_TYPE else value
        if value_type == _VALUE_STRING:
            raw = self.string_bytes(where, MAX_KEPT_STRING_BYTES if keep else 0)
            if isinstance(raw, int):
                return StringSummary(raw) if keep else None
            return raw.decode("utf-8", errors="replace")
        if value_type == _VALUE_ARRAY:
            return self.parse_array(where, keep, depth + 1)
        raise self.fail(f"unknown value type {value_type} at {where}", type_start)

    def parse_array(self, where: str, keep: bool, depth: int) -> Any:
        array_start = self.pos
        if depth > MAX_ARRAY_NESTING:
            raise self.fail(f"arrays nested deeper than {MAX_ARRAY_NESTING} levels at {where}")
        element_type = self.unpack(_U32, f"array element type at {where}")
        length = self.unpack(_U64, f"array length at {where}")
        scalar = _SCALAR_TYPES.get(element_type)
        if scalar is not None:
            min_element_bytes = scalar[1].size
        elif element_type == _VALUE_STRING:
            min_element_bytes = _MIN_STRING_BYTES
        elif element_type == _VALUE_ARRAY:
            min_element_bytes = _MIN_NESTED_ARRAY_BYTES
        else:
            raise self.fail(f"unknown array element type {element_type} at {where}", array_start)
        type_name = _VALUE_TYPE_NAMES[element_type]
        if length * min_element_bytes > self.remaining():
            raise self.fail(
                f"array of {_quantity(length)} {type_name} elements at {where} overruns the "
                f"file: they take at least {_quantity(length * min_element_bytes)} bytes, "
                f"{self.remaining()} remain",
                array_start,
            )
        keep_whole = keep and length <= MAX_KEPT_ARRAY_LENGTH
        if scalar is not None:
            # Fixed-size elements: the total check above bounds every one of them.
            if not keep_whole:
                self.pos += length * min_element_bytes
                return ArraySummary(type_name, length) if keep else None
            codec = struct.Struct(f"<{length}{scalar[1].format[1:]}")
            values = list(codec.unpack(self.take(codec.size)))
            return [value != 0 for value in values] if element_type == _BOOL_TYPE else values
        if element_type == _VALUE_STRING and not keep_whole:
            self.skip_strings(length, where)
            return ArraySummary(type_name, length) if keep else None
        items = [
            self.parse_value(element_type, f"element {index} of {where}", array_start, keep_whole, depth)
            for index in range(length)
        ]
        if keep_whole:
            return items
        return ArraySummary(type_name, length) if keep else None

    def skip_strings(self, count: int, where: str) -> None:
        """Walk ``count`` strings, checking each length, without reading them.

        The hot loop of a 128k-token vocabulary, hence the local variables.
        """
        file_size = self.file_size
        pos = self.pos
        window, window_start = self.window, self.window_start
        window_end = window_start + len(window)
        unpack_length = _U64.unpack_from
        for index in range(count):
            if pos + 8 > window_end:
                self.pos = pos
                if pos + 8 > file_size:
                    raise self.fail(
                        f"string length at element {index} of {where} runs past the end of the file"
                    )
                self._window_index(8)
                window, window_start = self.window, self.window_start
                window_end = window_start + len(window)
            (length,) = unpack_length(window, pos - window_start)
            if length > file_size - pos - 8:
                raise self.fail(
                    f"string length {_quantity(length)} at element {index} of {where} "
                    f"runs past the end of the file",
                    pos,
                )
            pos += 8 + length
        self.pos = pos

    # -- tensor table ---------------------------------------------------

    def parse_tensor_table(self, tensor_count: int, alignment: int) -> tuple[list[TensorInfo], list[int]]:
        tensors: list[TensorInfo] = []
        offset_fields: list[int] = []
        tensor_numbers: dict[str, int] = {}
        for number in range(tensor_count):
            name_start = self.pos
            name = self.tensor_name(number)
            if name in tensor_numbers:
                raise self.fail(
                    f"duplicate tensor name {name!r} (tensors #{tensor_numbers[name]} and #{number})",
                    name_start,
                )
            tensor_numbers[name] = number
            dims = self.tensor_dims(name)
            ggml_type = self.tensor_type(name, dims)
            offset_fields.append(self.pos)
            offset = self.unpack(_U64, f"data offset of tensor {name!r}")
            if offset % alignment:
                raise self.fail(
                    f"tensor {name!r} offset {offset} is not a multiple of the alignment {alignment}",
                    offset_fields[-1],
                )
            n_elements = _product(dims)
            nbytes = n_elements // ggml_type.block_size * ggml_type.type_size
            tensors.append(TensorInfo(name, dims, ggml_type.type_id, ggml_type.name, offset, nbytes))
        return tensors, offset_fields

    def tensor_name(self, number: int) -> str:
        name_start = self.pos
        raw_name = self.string_bytes(f"tensor #{number} name", MAX_TENSOR_NAME_BYTES)
        if isinstance(raw_name, int):
            raise self.fail(
                f"tensor #{number} name is {raw_name} bytes long "
                f"(llama.cpp's limit is {MAX_TENSOR_NAME_BYTES})",
                name_start,
            )
        try:
            return raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"tensor #{number} name is not valid UTF-8", name_start) from None

    def tensor_dims(self, name: str) -> tuple[int, ...]:
        dims_start = self.pos
        n_dims = self.unpack(_U32, f"dimension count of tensor {name!r}")
        if n_dims > GGML_MAX_DIMS:
            raise self.fail(
                f"tensor {name!r} has {n_dims} dimensions (GGML_MAX_DIMS is {GGML_MAX_DIMS})",
                dims_start,
            )
        dims = tuple(
            self.unpack(_U64, f"dimension {axis} of tensor {name!r}") for axis in range(n_dims)
        )
        if 0 in dims:
            raise self.fail(f"tensor {name!r} has a zero dimension: shape {_shape_text(dims)}", dims_start)
        # ggml holds each dimension and the element count in an int64_t.
        if _product(dims) > INT64_MAX:
            raise self.fail(
                f"tensor {name!r} shape {_shape_text(dims)} holds more elements than int64 can count",
                dims_start,
            )
        return dims

    def tensor_type(self, name: str, dims: tuple[int, ...]) -> GGMLType:
        type_start = self.pos
        type_id = self.unpack(_U32, f"ggml type of tensor {name!r}")
        ggml_type = GGML_TYPES.get(type_id)
        if ggml_type is None:
            raise self.fail(f"tensor {name!r} has unknown ggml type {type_id}", type_start)
        row_length = dims[0] if dims else 1
        if row_length % ggml_type.block_size:
            raise self.fail(
                f"tensor {name!r} rows of {row_length} elements are not a multiple of the "
                f"{ggml_type.name} block size {ggml_type.block_size}",
                type_start,
            )
        return ggml_type

    def check_tensor_data(self, tensors: list[TensorInfo], offset_fields: list[int], data_offset: int) -> None:
        for tensor, offset_field in zip(tensors, offset_fields):
            start = data_offset + tensor.offset
            end = start + tensor.nbytes
            if end > self.file_size:
                raise self.fail(
                    f"tensor {tensor.name!r} data [{start}, {end}) lies outside the file "
                    f"(size {self.file_size})",
                    offset_field,
                )
        # Two tensors claiming the same bytes would alias each other's weights;
        # sorting thousands of tensors at most is cheap.
        by_offset = sorted(zip(tensors, offset_fields), key=lambda pair: pair[0].offset)
        for (first, _), (second, second_field) in zip(by_offset, by_offset[1:]):
            if first.offset + first.nbytes > second.offset:
                raise self.fail(
                    f"tensors {first.name!r} and {second.name!r} overlap: data "
                    f"[{data_offset + first.offset}, {data_offset + first.offset + first.nbytes}) "
                    f"and [{data_offset + second.offset}, {data_offset + second.offset + second.nbytes})",
                    second_field,
                )


# ----------------------------------------------------------------------------- tensor data


def value_bytes(info: GGUFInfo, key: str) -> bytes | None:
    """The raw bytes of one metadata value as the file holds them (None for an absent key): a value
    kept only as a summary (a vocabulary) is compared by these bytes. The span was checked by
    :func:`read_info`; the file is read again, so it must not have changed since."""
    span = info.value_spans.get(key)
    if span is None:
        return None
    _, start, end = span
    with open(info.path, "rb") as file:
        if os.fstat(file.fileno()).st_size != info.file_size:
            raise InvalidGGUF(info.path, "the file changed since its header was read")
        file.seek(start)
        data = file.read(end - start)
    if len(data) != end - start:
        raise InvalidGGUF(info.path, "the file shrank while it was being read", start)
    return data


class TensorData:
    """The tensor data of a file whose header :func:`read_info` checked, through a read-only memory map.

    Every tensor's byte range was checked against the file size when the header was read; the file
    size is checked again when the map is made, so a file truncated in between is refused rather
    than read past its end. :meth:`drop` gives mapped pages back once they are used, so reading a
    whole model keeps as little of it resident as one piece at a time.
    """

    def __init__(self, info: GGUFInfo):
        import mmap

        self.info = info
        self._file = open(info.path, "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size != info.file_size:
                raise InvalidGGUF(info.path, f"the file changed since its header was read ({info.file_size} "
                                             f"bytes then, {size} now)")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except BaseException:
            self._file.close()
            raise
        self._view = memoryview(self._map) if self._map is not None else memoryview(b"")
        self._page = mmap.PAGESIZE
        if self._map is not None and hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)

    def span(self, tensor: TensorInfo) -> tuple[int, int]:
        """The file offsets [start, end) of a tensor's bytes."""
        start = self.info.data_offset + tensor.offset
        return start, start + tensor.nbytes

    def raw(self, tensor: TensorInfo, start: int = 0, stop: int | None = None) -> memoryview:
        """Bytes ``start:stop`` of a tensor (relative to the tensor), without a copy."""
        first, end = self.span(tensor)
        stop = tensor.nbytes if stop is None else stop
        if not 0 <= start <= stop <= tensor.nbytes:
            raise ValueError(f"bytes {start}:{stop} of tensor {tensor.name!r} ({tensor.nbytes} bytes)")
        return self._view[first + start: first + stop]

    def prefetch(self, tensor: TensorInfo) -> None:
        """Ask the kernel to start reading a tensor's pages into the page cache (not into this process)."""
        import mmap

        if self._map is None or not hasattr(mmap, "MADV_WILLNEED") or not tensor.nbytes:
            return
        first, end = self.span(tensor)
        begin = first // self._page * self._page
        self._map.madvise(mmap.MADV_WILLNEED, begin, end - begin)

    def drop(self, tensor: TensorInfo, start: int = 0, stop: int | None = None) -> None:
        """Let the kernel take back the pages of bytes ``start:stop`` of a tensor (the file is unchanged)."""
        import mmap

        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        first, _ = self.span(tensor)
        stop = tensor.nbytes if stop is None else stop
        begin = (first + start) // self._page * self._page
        end = first + stop
        if end > begin:
            self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)

    def close(self) -> None:
        self._view.release()
        if self._map is not None:
            self._map.close()
        self._file.close()

    def __enter__(self) -> "TensorData":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
