"""Two tensors compared value by value: relative L2 change, cosine similarity, largest absolute difference.

Each side is read from a :class:`gguf.TensorData` memory map a slice at a time and turned into
float32 (float types by numpy, quantised types by gguf-py's dequantisation code), so memory stays
bounded by one slice of each side whatever the size of the tensor or the model; each slice's pages
are given back to the kernel once used. A type neither can turn into numbers is compared by bytes.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from gitmodel.gguf import GGML_TYPES, TensorData, TensorInfo

# Elements per slice: a multiple of every block size (32, 64, 128, 256), and small enough that the
# few float32 arrays of a slice stay in the CPU's cache while numpy walks them several times.
SLICE_ELEMENTS = 1 << 18

_NATIVE = {0: "<f4", 28: "<f8", 24: "<i1", 25: "<i2", 26: "<i4", 27: "<i8"}
_F16, _BF16 = 1, 30
_F16_TABLE: list[np.ndarray] = []


def _f16_table() -> np.ndarray:
    # every half-precision value as float32, indexed by its bits: a lookup is ~3x faster than numpy's
    # own conversion, the pass that dominates a diff of F16 checkpoints
    if not _F16_TABLE:
        _F16_TABLE.append(np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32))
    return _F16_TABLE[0]


@dataclass
class Sums:
    """What a value comparison accumulates over the slices of two tensors."""

    aa: float = 0.0       # ‖a‖²
    bb: float = 0.0       # ‖b‖²
    ab: float = 0.0       # a·b
    dd: float = 0.0       # ‖b − a‖²
    max_abs: float = 0.0  # max |b − a|

    def add(self, other: "Sums") -> None:
        self.aa += other.aa
        self.bb += other.bb
        self.ab += other.ab
        self.dd += other.dd
        self.max_abs = max(self.max_abs, other.max_abs)

    @property
    def relative_l2(self) -> float | None:
        """‖b − a‖ / ‖a‖; None when a is all zeros and b is not (no scale to measure against)."""
        if self.dd == 0:
            return 0.0
        return math.sqrt(self.dd / self.aa) if self.aa > 0 else None

    @property
    def cosine(self) -> float | None:
        if self.aa == 0 or self.bb == 0:
            return 1.0 if self.aa == self.bb == 0 else None
        return max(-1.0, min(1.0, self.ab / math.sqrt(self.aa * self.bb)))


def can_dequantise(type_id: int) -> bool:
    """Whether the values of a tensor of this ggml type can be read as numbers here."""
    if type_id in _NATIVE or type_id in (_F16, _BF16):
        return True
    quants = _gguf_quants()
    if quants is None:
        return False
    dequantize, qtype_of = quants
    try:
        qtype = qtype_of(type_id)
        ggml = GGML_TYPES[type_id]
        dequantize(np.zeros((1, ggml.type_size), dtype=np.uint8), qtype)
    except Exception:   # gguf-py raises NotImplementedError, ValueError or KeyError for what it lacks
        return False
    return True


_QUANTS: list = []


def _gguf_quants():
    """gguf-py's ``dequantize`` and its type enum, imported once; None without gguf-py."""
    if not _QUANTS:
        try:
            from gguf import GGMLQuantizationType
            from gguf.quants import dequantize
        except ImportError:
            _QUANTS.append(None)
        else:
            _QUANTS.append((dequantize, GGMLQuantizationType))
    return _QUANTS[0]


def floats(type_id: int, raw, out: np.ndarray | None = None) -> np.ndarray:
    """The values of ``raw`` (whole blocks of a tensor of ggml type ``type_id``) as float32; F16 values
    land in ``out`` when given (a buffer reused from slice to slice costs no fresh pages)."""
    native = _NATIVE.get(type_id)
    if native is not None:
        return np.frombuffer(raw, dtype=native).astype(np.float32, copy=False)
    if type_id == _F16:
        bits = np.frombuffer(raw, dtype="<u2")
        if out is None:
            return np.take(_f16_table(), bits)
        return np.take(_f16_table(), bits, out=out[:bits.size])
    if type_id == _BF16:
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    dequantize, qtype_of = _gguf_quants()
    ggml = GGML_TYPES[type_id]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, ggml.type_size)
    return dequantize(blocks, qtype_of(type_id)).reshape(-1).astype(np.float32, copy=False)


def _slices(tensor: TensorInfo):
    """(start, stop) byte offsets of the slices of a tensor, each a whole number of blocks."""
    ggml = GGML_TYPES[tensor.ggml_type]
    step = SLICE_ELEMENTS // ggml.block_size * ggml.type_size
    for start in range(0, tensor.nbytes, step):
        yield start, min(start + step, tensor.nbytes)


def same_bytes(a: TensorData, ta: TensorInfo, b: TensorData, tb: TensorInfo) -> bool:
    """Whether two tensors hold the same bytes (stops at the first slice that differs)."""
    if ta.nbytes != tb.nbytes:
        return False
    for start, stop in _slices(ta):
        equal = np.array_equal(np.frombuffer(a.raw(ta, start, stop), np.uint8),
                               np.frombuffer(b.raw(tb, start, stop), np.uint8))
        a.drop(ta, start, stop)
        b.drop(tb, start, stop)
        if not equal:
            return False
    return True


def compare_values(a: TensorData, ta: TensorInfo, b: TensorData, tb: TensorInfo, workers: int | None = None) -> Sums:
    """The sums of two tensors of the same shape (their types may differ: a requantised copy),
    both dequantisable (:func:`can_dequantise`), read slice by slice in element order. Slices go
    to ``workers`` threads (numpy lets go of the GIL while it converts and sums): at most that many
    slices of each side are in memory at once."""
    ga, gb = GGML_TYPES[ta.ggml_type], GGML_TYPES[tb.ggml_type]
    n = ta.n_elements

    local = threading.local()

    def one(first: int) -> Sums:
        with np.errstate(all="ignore"):    # inf - inf in a tensor is its own NaN, not a warning of ours
            return sums_of(first)

    def sums_of(first: int) -> Sums:
        if not hasattr(local, "buffers"):
            local.buffers = [np.empty(SLICE_ELEMENTS, dtype=np.float32) for _ in range(3)]
        bx, by, bd = local.buffers
        last = min(first + SLICE_ELEMENTS, n)
        sa = (first // ga.block_size * ga.type_size, last // ga.block_size * ga.type_size)
        sb = (first // gb.block_size * gb.type_size, last // gb.block_size * gb.type_size)
        x = floats(ta.ggml_type, a.raw(ta, *sa), bx)
        y = floats(tb.ggml_type, b.raw(tb, *sb), by)
        d = np.subtract(y, x, out=bd[:x.size])
        part = Sums(float(np.dot(x, x)), float(np.dot(y, y)), float(np.dot(x, y)), float(np.dot(d, d)),
                    float(max(d.max(), -d.min())) if d.size else 0.0)
        if not all(math.isfinite(v) for v in (part.aa, part.bb, part.ab, part.dd, part.max_abs)):
            part = _exact(x, y)
        a.drop(ta, *sa)
        b.drop(tb, *sb)
        return part

    starts = range(0, n, SLICE_ELEMENTS)
    workers = workers or min(2, os.cpu_count() or 1)
    total = Sums()
    if workers == 1 or len(starts) == 1:
        for first in starts:
            total.add(one(first))
        return total
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        for part in pool.map(one, starts):
            total.add(part)
    return total


def _exact(x: np.ndarray, y: np.ndarray) -> Sums:
    """A slice whose float32 sums overflowed (values near float32's limits): the sums in float64."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d = y64 - x64
    return Sums(float(np.dot(x64, x64)), float(np.dot(y64, y64)), float(np.dot(x64, y64)), float(np.dot(d, d)),
                float(np.max(np.abs(d))) if d.size else 0.0)
