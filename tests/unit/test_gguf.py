"""The GGUF header reader: every check names its problem exactly, valid files round-trip.

Files are built two ways: with the reference ``gguf`` package's GGUFWriter (valid
files, cross-checked with its GGUFReader) and byte by byte (malformed ones).
"""
from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from gitmodel.errors import InvalidGGUF
from gitmodel.gguf import (
    GGML_TYPES,
    LLAMA_FILE_TYPES,
    ArraySummary,
    GGUFInfo,
    StringSummary,
    read_info,
)

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
F32, F16, Q4_0, Q8_0, Q4_K = 0, 1, 2, 8, 12


# -- byte builders ------------------------------------------------------------


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def gstr(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return u64(len(data)) + data


def kv(key: str | bytes, value_type: int, payload: bytes) -> bytes:
    return gstr(key) + u32(value_type) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, UINT32, u32(value))


def array(element_type: int, length: int, body: bytes = b"") -> bytes:
    return u32(element_type) + u64(length) + body


def tensor(name: str | bytes, dims: tuple[int, ...], ggml_type: int = F32, offset: int = 0) -> bytes:
    return gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ggml_type) + u64(offset)


def gguf_bytes(
    kvs: list[bytes] = (),
    tensors: list[bytes] = (),
    *,
    version: int = 3,
    tensor_count: int | None = None,
    kv_count: int | None = None,
    alignment: int = 32,
    data_bytes: int = 0,
) -> bytes:
    header = (
        b"GGUF"
        + u32(version)
        + u64(len(tensors) if tensor_count is None else tensor_count)
        + u64(len(kvs) if kv_count is None else kv_count)
        + b"".join(kvs)
        + b"".join(tensors)
    )
    return header + b"\0" * (-len(header) % alignment) + b"\0" * data_bytes


@pytest.fixture
def write(tmp_path):
    def write(data: bytes, name: str = "model.gguf") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


def problem(path: Path) -> tuple[str, int | None]:
    with pytest.raises(InvalidGGUF) as caught:
        read_info(path)
    assert str(caught.value) == f"{path}: not a valid GGUF file: {caught.value.problem}" + (
        f" (at byte {caught.value.offset})" if caught.value.offset is not None else ""
    )
    return caught.value.problem, caught.value.offset


# -- a valid llama-like file, written by the reference implementation --------


def write_llama_like(path: Path, *, file_type: int | None = 15, vocab_size: int = 100) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny")
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_bool("tiny.flag", True)
    writer.add_array("tiny.small", [1, 2, 3])
    # Byte-level BPE, as Llama 3 has it: a SentencePiece ("llama") vocabulary
    # would need its 256 byte tokens, which llama.cpp falls back to.
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_token_list([f"tok{i}" for i in range(vocab_size)])
    writer.add_token_scores([float(-i) for i in range(vocab_size)])
    writer.add_token_types([1] * vocab_size)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((vocab_size, 64)).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    # Q8_0: 64 rows of 256 elements, 8 blocks of 34 bytes per row.
    writer.add_tensor(
        "blk.0.attn_q.weight",
        rng.integers(0, 255, (64, 8 * 34), dtype=np.uint8),
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture
def llama_like(tmp_path) -> Path:
    path = tmp_path / "tiny.gguf"
    write_llama_like(path)
    return path


def test_valid_file_matches_the_reference_reader(llama_like):
    info = read_info(llama_like)
    reference = gguf.GGUFReader(llama_like)

    assert isinstance(info, GGUFInfo)
    assert info.path == llama_like
    assert info.file_size == llama_like.stat().st_size
    assert info.version == 3
    assert info.alignment == reference.alignment == 32
    assert info.data_offset == reference.data_offset
    assert info.kv_count == len(info.metadata) == len(reference.fields) - 3  # its 3 header fields
    assert info.tensor_count == len(info.tensors) == len(reference.tensors)
    for ours, theirs in zip(info.tensors, reference.tensors):
        assert ours.name == theirs.name
        assert ours.dims == tuple(int(d) for d in theirs.shape)
        assert ours.ggml_type == int(theirs.tensor_type)
        assert ours.type_name == theirs.tensor_type.name
        assert ours.nbytes == theirs.n_bytes
        assert info.data_offset + ours.offset == theirs.data_offset
    assert info.parameter_count == sum(t.n_elements for t in reference.tensors) == 100 * 64 + 64 + 256 * 64


def test_valid_file_derived_fields(llama_like):
    info = read_info(llama_like)

    assert info.architecture == "llama"
    assert info.context_length == 2048
    assert info.quantization == "Q4_K_M"
    assert info.to_meta() == {
        "architecture": "llama",
        "parameters": 100 * 64 + 64 + 256 * 64,
        "quantization": "Q4_K_M",
        "context_length": 2048,
        "gguf_version": 3,
    }
    assert [t.type_name for t in info.tensors] == ["F16", "F32", "Q8_0"]
    assert info.tensors[2].dims == (256, 64)
    assert info.tensors[2].nbytes == 64 * 8 * 34


def test_metadata_values_and_summaries(llama_like):
    metadata = read_info(llama_like).metadata

    assert metadata["general.name"] == "tiny"
    assert metadata["tiny.flag"] is True
    assert metadata["tiny.small"] == [1, 2, 3]
    assert metadata["llama.embedding_length"] == 64
    # Arrays over 64 elements are summarised, not held.
    assert metadata["tokenizer.ggml.tokens"] == ArraySummary("string", 100)
    assert metadata["tokenizer.ggml.scores"] == ArraySummary("float32", 100)
    assert metadata["tokenizer.ggml.token_type"] == ArraySummary("int32", 100)


def test_short_arrays_are_kept_whole(tmp_path):
    path = tmp_path / "short.gguf"
    write_llama_like(path, vocab_size=64)
    metadata = read_info(path).metadata

    assert metadata["tokenizer.ggml.tokens"] == [f"tok{i}" for i in range(64)]
    assert metadata["tokenizer.ggml.scores"] == [float(-i) for i in range(64)]


def test_quantization_falls_back_to_the_type_holding_most_parameters(tmp_path):
    path = tmp_path / "no-ftype.gguf"
    write_llama_like(path, file_type=None)
    # Q8_0 holds 16384 parameters, F16 6400, F32 64.
    assert read_info(path).quantization == "Q8_0"


def test_unknown_file_type_falls_back_too(write):
    path = write(gguf_bytes([kv_u32("general.file_type", 4)], [tensor("w", (32,), Q4_0)], data_bytes=18))
    assert read_info(path).quantization == "Q4_0"


def test_header_without_architecture_or_tensors(write):
    info = read_info(write(gguf_bytes()))

    assert (info.architecture, info.context_length, info.quantization) == (None, None, None)
    assert info.parameter_count == 0
    assert info.tensors == [] and info.metadata == {}
    assert info.data_offset == 32


def test_every_scalar_type_reads_back(write):
    scalars = [
        (UINT8, struct.pack("<B", 255), 255),
        (INT8, struct.pack("<b", -1), -1),
        (UINT16, struct.pack("<H", 65535), 65535),
        (INT16, struct.pack("<h", -2), -2),
        (UINT32, u32(7), 7),
        (INT32, struct.pack("<i", -3), -3),
        (FLOAT32, struct.pack("<f", 0.5), 0.5),
        (BOOL, b"\x00", False),
        (UINT64, u64(2**64 - 1), 2**64 - 1),
        (INT64, struct.pack("<q", -(2**63)), -(2**63)),
        (FLOAT64, struct.pack("<d", 1.25), 1.25),
        (STRING, gstr("héllo"), "héllo"),
        (ARRAY, array(BOOL, 2, b"\x01\x00"), [True, False]),
        (ARRAY, array(ARRAY, 2, array(UINT8, 1, b"\x05") + array(STRING, 0)), [[5], []]),
    ]
    path = write(gguf_bytes([kv(f"k{i}", t, payload) for i, (t, payload, _) in enumerate(scalars)]))
    metadata = read_info(path).metadata
    assert list(metadata.values()) == [expected for _, _, expected in scalars]


def test_long_string_value_is_summarised(write, monkeypatch):
    monkeypatch.setattr("gitmodel.gguf.MAX_KEPT_STRING_BYTES", 10)
    path = write(gguf_bytes([kv("chat", STRING, gstr("x" * 11)), kv("short", STRING, gstr("y" * 10))]))
    assert read_info(path).metadata == {"chat": StringSummary(11), "short": "y" * 10}


def test_custom_alignment_is_honoured(write):
    data = gguf_bytes([kv_u32("general.alignment", 64)], [tensor("w", (8,), F32, 0)], alignment=64, data_bytes=32)
    info = read_info(write(data))
    assert info.alignment == 64
    assert info.data_offset % 64 == 0


def test_n_dims_zero_is_a_scalar(write):
    info = read_info(write(gguf_bytes([], [tensor("s", (), F32)], data_bytes=4)))
    assert info.tensors[0].dims == () and info.tensors[0].nbytes == 4 and info.parameter_count == 1


# -- the ggml type table -------------------------------------------------------


def test_type_table_matches_the_reference_implementation():
    theirs = {
        int(t): (t.name, block_size, type_size)
        for t, (block_size, type_size) in gguf.constants.GGML_QUANT_SIZES.items()
    }
    ours = {t.type_id: (t.name, t.block_size, t.type_size) for t in GGML_TYPES.values()}
    assert ours == theirs


def test_file_type_names_match_llama_cpp():
    theirs = {
        int(f): f.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        for f in gguf.constants.LlamaFileType
        if f.name != "GUESSED"
    }
    assert LLAMA_FILE_TYPES == theirs


# -- fixed header ---------------------------------------------------------------


def test_empty_file(write):
    assert problem(write(b"")) == ("file is empty", 0)


def test_bad_magic(write):
    assert problem(write(b"GGUX" + bytes(40))) == ("bad magic b'GGUX' (expected b'GGUF')", 0)


def test_bad_magic_in_a_tiny_file(write):
    assert problem(write(b"PK")) == ("bad magic b'PK' (expected b'GGUF')", 0)


def test_truncated_header(write):
    assert problem(write(b"GGUF\x03\x00\x00\x00\x00")) == (
        "truncated header: the file has 9 bytes, the fixed header alone takes 24",
        0,
    )


@pytest.mark.parametrize("version", [0, 1, 4, 0xFFFFFFFF])
def test_unsupported_version(write, version):
    assert problem(write(gguf_bytes(version=version))) == (
        f"unsupported version {version} (supported: 2, 3)",
        4,
    )


def test_version_2_is_supported(write):
    assert read_info(write(gguf_bytes(version=2))).version == 2


def test_big_endian_file_is_reported_as_unsupported(write):
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0) + bytes(8)
    assert problem(write(data)) == ("big-endian GGUF (version 3) is not supported", 4)


def test_tensor_count_bounded_by_file_size(write):
    data = gguf_bytes(tensor_count=2**60)
    data += bytes(5120 - len(data))
    assert problem(write(data)) == (
        "tensor count 2^60 cannot fit in a 5120-byte file (each entry takes at least 24 bytes)",
        8,
    )


def test_kv_count_bounded_by_file_size(write):
    data = gguf_bytes(kv_count=10**12)
    assert problem(write(data)) == (
        "key/value count 10^12 cannot fit in a 32-byte file with 0 tensors "
        "(each key/value takes at least 13 bytes)",
        16,
    )


def test_counts_bounded_together(write):
    # 1 tensor (24 bytes) fits the 32 bytes after the fixed header, but not with a key/value.
    data = gguf_bytes(tensor_count=1, kv_count=1, data_bytes=24)[:56]
    assert problem(write(data)) == (
        "key/value count 1 cannot fit in a 56-byte file with 1 tensor "
        "(each key/value takes at least 13 bytes)",
        16,
    )


# -- key/value section ------------------------------------------------------------


def test_key_length_runs_past_the_end(write):
    keys = [kv_u32(f"k{i}", i) for i in range(3)]
    data = gguf_bytes(keys + [u64(99999) + b"x" * 40])
    key_start = 24 + sum(len(k) for k in keys)
    assert problem(write(data)) == (
        "string length 99999 at key #3 runs past the end of the file",
        key_start,
    )


def test_string_value_runs_past_the_end(write):
    data = gguf_bytes([kv("general.name", STRING, u64(2**40) + b"abc")])
    assert problem(write(data)) == (
        "string length 2^40 at key 'general.name' runs past the end of the file",
        24 + 8 + 12 + 4,
    )


def test_key_not_utf8(write):
    assert problem(write(gguf_bytes([kv(b"bad\xff", UINT8, b"\0")]))) == (
        "key #0 is not valid UTF-8",
        24,
    )


def test_key_too_long(write):
    key = "k" * 65536
    assert problem(write(gguf_bytes([kv(key, UINT8, b"\0")]))) == (
        "key #0 is 65536 bytes long (limit 65535)",
        24,
    )


def test_duplicate_key(write):
    first = kv_u32("llama.context_length", 1)
    data = gguf_bytes([first, kv_u32("a", 1), kv_u32("llama.context_length", 2)])
    assert problem(write(data)) == (
        "duplicate key 'llama.context_length' (keys #0 and #2)",
        24 + len(first) + len(kv_u32("a", 1)),
    )


def test_unknown_value_type(write):
    assert problem(write(gguf_bytes([kv("x", 13, u32(0))]))) == (
        "unknown value type 13 at key 'x'",
        24 + 9,
    )


def test_unknown_array_element_type(write):
    assert problem(write(gguf_bytes([kv("x", ARRAY, array(99, 1, b"\0" * 8))]))) == (
        "unknown array element type 99 at key 'x'",
        24 + 9 + 4,
    )


def test_array_overruns_the_file(write):
    data = gguf_bytes([kv("x", ARRAY, array(UINT32, 10**12))])
    remaining = len(data) - (24 + 9 + 4 + 12)
    assert problem(write(data)) == (
        f"array of 10^12 uint32 elements at key 'x' overruns the file: they take at least "
        f"4000000000000 bytes, {remaining} remain",
        24 + 9 + 4,
    )


def test_string_array_length_bounded_by_the_smallest_string(write):
    data = gguf_bytes([kv("tokenizer.ggml.tokens", ARRAY, array(STRING, 2**32))])
    remaining = len(data) - (24 + 29 + 4 + 12)
    assert problem(write(data)) == (
        f"array of 2^32 string elements at key 'tokenizer.ggml.tokens' overruns the file: "
        f"they take at least 2^35 bytes, {remaining} remain",
        24 + 29 + 4,
    )


def test_each_skipped_string_is_bounds_checked(write):
    # 100 strings (summarised, walked without reading); the 71st claims too much.
    strings = [gstr(f"t{i}") for i in range(70)] + [u64(10**6) + b"zz"] + [gstr("")] * 29
    body = b"".join(strings)
    data = gguf_bytes([kv("tokens", ARRAY, array(STRING, 100, body))])
    element_start = 24 + 14 + 4 + 12 + sum(len(s) for s in strings[:70])
    assert problem(write(data)) == (
        "string length 10^6 at element 70 of key 'tokens' runs past the end of the file",
        element_start,
    )


def test_each_kept_string_is_bounds_checked(write):
    body = gstr("a") + u64(5000)
    data = gguf_bytes([kv("tokens", ARRAY, array(STRING, 2, body))])
    assert problem(write(data)) == (
        "string length 5000 at element 1 of key 'tokens' runs past the end of the file",
        24 + 14 + 4 + 12 + 9,
    )


def test_truncated_inside_a_skipped_string_array(write):
    body = b"".join(gstr(f"t{i}") for i in range(80))
    data = gguf_bytes([kv("tokens", ARRAY, array(STRING, 100, body))])
    cut = 24 + 14 + 4 + 12 + len(body) + 3
    assert problem(write(data[:cut])) == (
        "string length at element 80 of key 'tokens' runs past the end of the file",
        cut - 3,
    )


def test_truncated_scalar_value(write):
    data = gguf_bytes([kv("n", UINT64, u64(1))])[: 24 + 9 + 4 + 3]
    assert problem(write(data)) == ("uint64 value at key 'n' runs past the end of the file", 24 + 13)


def test_arrays_nested_too_deep(write):
    nested = array(ARRAY, 1, array(ARRAY, 1, array(ARRAY, 1, array(UINT8, 0))))
    data = gguf_bytes([kv("deep", ARRAY, nested)])
    assert problem(write(data)) == (
        "arrays nested deeper than 3 levels at element 0 of element 0 of element 0 of key 'deep'",
        24 + 12 + 4 + 36,
    )


def test_three_levels_of_arrays_are_allowed(write):
    nested = array(ARRAY, 1, array(ARRAY, 1, array(UINT8, 1, b"\x07")))
    assert read_info(write(gguf_bytes([kv("deep", ARRAY, nested)]))).metadata == {"deep": [[[7]]]}


@pytest.mark.parametrize("alignment", [0, 24, 33])
def test_alignment_not_a_power_of_two(write, alignment):
    assert problem(write(gguf_bytes([kv_u32("general.alignment", alignment)]))) == (
        f"general.alignment {alignment} is not a power of two",
        24 + 25 + 4,
    )


def test_alignment_of_the_wrong_type(write):
    data = gguf_bytes([kv("general.alignment", UINT64, u64(32))])
    assert problem(write(data)) == ("general.alignment must be a uint32, not uint64", 24 + 25 + 4)


# -- tensor table -----------------------------------------------------------------


def test_tensor_name_runs_past_the_end(write):
    data = gguf_bytes([], [u64(4000) + b"blk"])
    assert problem(write(data)) == (
        "string length 4000 at tensor #0 name runs past the end of the file",
        24,
    )


def test_tensor_name_too_long(write):
    data = gguf_bytes([], [tensor("x" * 64, (32,))], data_bytes=128)
    assert problem(write(data)) == ("tensor #0 name is 64 bytes long (llama.cpp's limit is 63)", 24)


def test_tensor_name_not_utf8(write):
    data = gguf_bytes([], [tensor(b"w\xc3", (8,))], data_bytes=32)
    assert problem(write(data)) == ("tensor #0 name is not valid UTF-8", 24)


def test_duplicate_tensor_name(write):
    first = tensor("w", (8,), F32, 0)
    data = gguf_bytes([], [first, tensor("v", (8,), F32, 32), tensor("w", (8,), F32, 64)], data_bytes=96)
    assert problem(write(data)) == (
        "duplicate tensor name 'w' (tensors #0 and #2)",
        24 + 2 * len(first),
    )


def test_too_many_dimensions(write):
    data = gguf_bytes([], [tensor("w", (1, 1, 1, 1, 1))], data_bytes=32)
    assert problem(write(data)) == ("tensor 'w' has 5 dimensions (GGML_MAX_DIMS is 4)", 24 + 9)


def test_zero_dimension(write):
    data = gguf_bytes([], [tensor("w", (4096, 0))], data_bytes=32)
    assert problem(write(data)) == ("tensor 'w' has a zero dimension: shape [4096, 0]", 24 + 9)


def test_absurd_dimensions(write):
    data = gguf_bytes([], [tensor("w", (2**32, 2**31))], data_bytes=32)
    assert problem(write(data)) == (
        "tensor 'w' shape [4294967296, 2147483648] holds more elements than int64 can count",
        24 + 9,
    )


def test_dimension_runs_past_the_end(write):
    # Claims 4 dimensions; the file ends 2 bytes into the third.
    data = b"GGUF" + u32(3) + u64(1) + u64(0) + gstr("w") + u32(4) + u64(4) + u64(4) + b"\0\0"
    assert problem(write(data)) == (
        "dimension 2 of tensor 'w' runs past the end of the file",
        24 + 9 + 4 + 16,
    )


@pytest.mark.parametrize("ggml_type", [4, 5, 31, 36, 42, 2**32 - 1])
def test_unknown_ggml_type(write, ggml_type):
    data = gguf_bytes([], [tensor("w", (256,), ggml_type)], data_bytes=1024)
    assert problem(write(data)) == (f"tensor 'w' has unknown ggml type {ggml_type}", 24 + 9 + 4 + 8)


def test_row_not_a_multiple_of_the_block_size(write):
    data = gguf_bytes([], [tensor("w", (100, 2), Q4_0)], data_bytes=1024)
    assert problem(write(data)) == (
        "tensor 'w' rows of 100 elements are not a multiple of the Q4_0 block size 32",
        24 + 9 + 4 + 16,
    )


def test_offset_not_a_multiple_of_the_alignment(write):
    data = gguf_bytes([], [tensor("w", (8,), F32, 17)], data_bytes=64)
    assert problem(write(data)) == (
        "tensor 'w' offset 17 is not a multiple of the alignment 32",
        24 + 9 + 4 + 8 + 4,
    )


def test_tensor_data_outside_the_file(write):
    name = "blk.0.attn_q.weight"
    # 4096 x 4096 Q4_K: 16 x 144 bytes per row, 9437184 bytes; the file holds 64.
    data = gguf_bytes([], [tensor(name, (4096, 4096), Q4_K, 0)], data_bytes=64)
    data_offset = len(data) - 64
    entry_offset_field = 24 + 8 + len(name) + 4 + 16 + 4
    assert problem(write(data)) == (
        f"tensor '{name}' data [{data_offset}, {data_offset + 9437184}) lies outside the file "
        f"(size {len(data)})",
        entry_offset_field,
    )


def test_tensor_offset_far_past_the_end(write):
    data = gguf_bytes([], [tensor("w", (8,), F32, 2**64 - 32)], data_bytes=32)
    start = len(data) - 32 + 2**64 - 32
    assert problem(write(data)) == (
        f"tensor 'w' data [{start}, {start + 32}) lies outside the file (size {len(data)})",
        24 + 9 + 4 + 8 + 4,
    )


def test_overlapping_tensors(write):
    first = tensor("a", (16,), F32, 0)
    data = gguf_bytes([], [first, tensor("b", (8,), F32, 32)], data_bytes=96)
    data_offset = len(data) - 96
    assert problem(write(data)) == (
        f"tensors 'a' and 'b' overlap: data [{data_offset}, {data_offset + 64}) "
        f"and [{data_offset + 32}, {data_offset + 64})",
        24 + len(first) + 9 + 4 + 8 + 4,
    )


# -- whole-file properties ----------------------------------------------------------


@pytest.mark.slow
def test_every_truncation_of_a_valid_file_is_reported(llama_like):
    full = llama_like.read_bytes()
    info = read_info(llama_like)
    data_end = max(info.data_offset + t.offset + t.nbytes for t in info.tensors)
    cut_path = llama_like.with_name("cut.gguf")
    # Every cut inside the header, a sample of cuts inside the data, and the
    # last byte of every tensor.
    ends = {info.data_offset + t.offset + t.nbytes - 1 for t in info.tensors}
    for length in sorted({*range(info.data_offset + 1), *range(info.data_offset, data_end, 97), *ends}):
        cut_path.write_bytes(full[:length])
        with pytest.raises(InvalidGGUF):
            read_info(cut_path)
    cut_path.write_bytes(full[:data_end])
    assert read_info(cut_path).tensors == info.tensors


def test_tensor_data_is_never_read(tmp_path):
    # A 1 GiB sparse file: only its header is read, in milliseconds.
    path = tmp_path / "big.gguf"
    dims = (16384, 16384)  # F32: exactly 1 GiB
    header = gguf_bytes([kv("general.architecture", STRING, gstr("llama"))], [tensor("w", dims)])
    with open(path, "wb") as file:
        file.write(header)
        file.truncate(len(header) + 2**30)
    started = time.perf_counter()
    info = read_info(path)
    assert time.perf_counter() - started < 0.1
    assert info.parameter_count == 2**28


def write_realistic_header(path: Path) -> None:
    """A llama-3-8B-shaped Q4_K_M file: 128256-token vocabulary, 280k merges, 291 tensors.

    Hand-built (GGUFWriter packs arrays element by element, too slowly), and
    sparse: its 4.6 GB of tensor data are never written.
    """
    vocab, merges = 128256, 280147
    tokens = b"".join(gstr(f"tok{i}") for i in range(vocab))
    merge_list = b"".join(gstr(f"m{i} x{i}") for i in range(merges))
    kvs = [
        kv("general.architecture", STRING, gstr("llama")),
        kv("general.name", STRING, gstr("Meta Llama 3 8B Instruct")),
        kv_u32("general.file_type", 15),
        kv_u32("llama.context_length", 8192),
        kv_u32("llama.embedding_length", 4096),
        kv_u32("llama.block_count", 32),
        kv("tokenizer.ggml.model", STRING, gstr("gpt2")),
        kv("tokenizer.ggml.tokens", ARRAY, array(STRING, vocab, tokens)),
        kv("tokenizer.ggml.scores", ARRAY, array(FLOAT32, vocab, bytes(4 * vocab))),
        kv("tokenizer.ggml.token_type", ARRAY, array(INT32, vocab, bytes(4 * vocab))),
        kv("tokenizer.ggml.merges", ARRAY, array(STRING, merges, merge_list)),
        kv("tokenizer.chat_template", STRING, gstr("{% for m in messages %}{{ m.content }}{% endfor %}" * 40)),
    ]
    shapes = [("token_embd.weight", (4096, vocab), Q4_K)]
    for block in range(32):
        for name, dims in [
            ("attn_q", (4096, 4096)), ("attn_k", (4096, 1024)), ("attn_v", (4096, 1024)),
            ("attn_output", (4096, 4096)), ("ffn_gate", (4096, 14336)), ("ffn_up", (4096, 14336)),
            ("ffn_down", (14336, 4096)),
        ]:
            shapes.append((f"blk.{block}.{name}.weight", dims, Q4_K))
        shapes += [(f"blk.{block}.attn_norm.weight", (4096,), F32), (f"blk.{block}.ffn_norm.weight", (4096,), F32)]
    shapes += [("output_norm.weight", (4096,), F32), ("output.weight", (4096, vocab), Q4_K)]
    entries, offset = [], 0
    for name, dims, ggml_type in shapes:
        entries.append(tensor(name, dims, ggml_type, offset))
        kind = GGML_TYPES[ggml_type]
        nbytes = int(np.prod(dims)) // kind.block_size * kind.type_size
        offset += -(-nbytes // 32) * 32
    header = gguf_bytes(kvs, entries)
    with open(path, "wb") as file:
        file.write(header)
        file.truncate(len(header) + offset)


def test_realistic_header_is_fast(tmp_path):
    path = tmp_path / "llama3.gguf"
    write_realistic_header(path)
    started = time.perf_counter()
    info = read_info(path)
    elapsed = time.perf_counter() - started

    assert info.tensor_count == 291
    assert info.metadata["tokenizer.ggml.tokens"] == ArraySummary("string", 128256)
    assert info.metadata["tokenizer.ggml.merges"] == ArraySummary("string", 280147)
    assert info.quantization == "Q4_K_M" and info.context_length == 8192
    assert info.parameter_count == 8_030_261_248
    # Typically ~0.1 s; generous so a loaded CI machine does not flake.
    assert elapsed < 1.0


# -- what llama.cpp aborts on: gguf_checks ----------------------------------------

SPM_TOKENS = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "\u2581a", "\u2581b", "\u2581ab"]


def vocab_kvs(tokens: list[str | bytes], *, model: str = "llama", arch: str = "llama",
              scores: int | None = None, types: list[int] | None = None, extra: list[bytes] = ()) -> list[bytes]:
    """A vocabulary as llama.cpp's converter lays it out; ``scores`` = how many scores."""
    n_scores = len(tokens) if scores is None else scores
    kvs = [
        kv("general.architecture", STRING, gstr(arch)),
        kv("tokenizer.ggml.model", STRING, gstr(model)),
        kv("tokenizer.ggml.tokens", ARRAY, array(STRING, len(tokens), b"".join(gstr(t) for t in tokens))),
        kv("tokenizer.ggml.scores", ARRAY, array(FLOAT32, n_scores, struct.pack(f"<{n_scores}f", *range(n_scores)))),
    ]
    if types is not None:
        packed = struct.pack(f"<{len(types)}i", *types)
        kvs.append(kv("tokenizer.ggml.token_type", ARRAY, array(INT32, len(types), packed)))
    return kvs + list(extra)


def test_a_real_shaped_spm_vocabulary_passes(write):
    path = write(gguf_bytes(vocab_kvs(SPM_TOKENS, extra=[kv_u32("tokenizer.ggml.bos_token_id", 1)])))
    assert read_info(path).metadata["tokenizer.ggml.model"] == "llama"


def test_a_duplicated_token_is_refused_with_its_index_and_offset(write):
    tokens = [*SPM_TOKENS]
    tokens[-1] = "\u2581a"          # token 261 again
    data = gguf_bytes(vocab_kvs(tokens))
    first = data.index(gstr("\u2581a"))
    second = data.index(gstr("\u2581a"), first + 1)

    assert problem(write(data)) == (
        f"key 'tokenizer.ggml.tokens': token {len(tokens) - 1} repeats token {len(tokens) - 3} ('\u2581a'): "
        "llama.cpp aborts on a vocabulary whose strings are not unique", second)


def test_an_empty_token_collides_with_llama_cpps_name_for_it(write):
    # llama.cpp renames an empty token i to "[EMPTY_i]"; two empty tokens are distinct.
    assert read_info(write(gguf_bytes(vocab_kvs([*SPM_TOKENS, "", ""])), "two-empty.gguf"))
    tokens = [*SPM_TOKENS, "", f"[EMPTY_{len(SPM_TOKENS)}]"]
    message, _ = problem(write(gguf_bytes(vocab_kvs(tokens)), "collide.gguf"))
    assert message.startswith(f"key 'tokenizer.ggml.tokens': token {len(SPM_TOKENS) + 1} repeats token "
                              f"{len(SPM_TOKENS)} ('[EMPTY_{len(SPM_TOKENS)}]')")


def test_scores_shorter_than_the_tokens_are_refused(write):
    data = gguf_bytes(vocab_kvs(SPM_TOKENS, scores=len(SPM_TOKENS) - 1))
    scores_at = data.index(gstr("tokenizer.ggml.scores")) + len(gstr("tokenizer.ggml.scores")) + 4
    n = len(SPM_TOKENS)
    assert problem(write(data)) == (
        f"key 'tokenizer.ggml.scores': {n - 1} entries for {n} tokens: index {n - 1} (token '\u2581ab') has none",
        scores_at + 4)


def test_token_types_shorter_than_the_tokens_are_refused(write):
    message, _ = problem(write(gguf_bytes(vocab_kvs(SPM_TOKENS, types=[1] * 10))))
    assert message.startswith(f"key 'tokenizer.ggml.token_type': 10 entries for {len(SPM_TOKENS)} tokens: index 10")


def test_scores_of_the_wrong_type_are_refused(write):
    kvs = vocab_kvs(SPM_TOKENS, scores=0)
    kvs[3] = kv("tokenizer.ggml.scores", ARRAY, array(STRING, 1, gstr("x")))
    message, _ = problem(write(gguf_bytes(kvs)))
    assert message == "key 'tokenizer.ggml.scores': must be an array of int32 or float32, not of string"


@pytest.mark.parametrize("key", ["bos", "eos", "unknown", "padding", "eot"])
def test_a_special_token_id_beyond_the_vocabulary_is_refused(write, key):
    n = len(SPM_TOKENS)
    data = gguf_bytes(vocab_kvs(SPM_TOKENS, extra=[kv_u32(f"tokenizer.ggml.{key}_token_id", n)]))
    offset = data.index(gstr(f"tokenizer.ggml.{key}_token_id")) + len(gstr(f"tokenizer.ggml.{key}_token_id")) + 4
    assert problem(write(data)) == (
        f"key 'tokenizer.ggml.{key}_token_id': token id {n} is outside the vocabulary of {n} tokens "
        f"(ids 0 to {n - 1})", offset)


@pytest.mark.parametrize("byte, stand_in", [(0xC3, None), (0x41, "A"), (0x00, "\x00")])
def test_a_spm_vocabulary_without_its_byte_tokens_is_refused(write, byte, stand_in):
    tokens = [t for t in SPM_TOKENS if t != f"<0x{byte:02X}>"]
    if stand_in is not None:
        tokens.append(stand_in)   # llama.cpp falls back to the byte itself, but as a C string
    path = write(gguf_bytes(vocab_kvs(tokens)))
    if stand_in == "A":
        assert read_info(path)
        return
    message, _ = problem(path)
    assert message.startswith(f"key 'tokenizer.ggml.tokens': no token for byte 0x{byte:02X} (neither "
                              f"'<0x{byte:02X}>' nor the byte")


def test_a_tokenizer_that_adds_eos_needs_one(write):
    # Two SentencePiece tokens: llama.cpp's default BOS id 1 exists, its EOS id 2 does not.
    kvs = vocab_kvs(["a", "b"], extra=[kv("tokenizer.ggml.add_eos_token", BOOL, b"\x01")])
    message, _ = problem(write(gguf_bytes(kvs)))
    assert message == ("key 'tokenizer.ggml.eos_token_id' is missing and llama.cpp has no default for it in this "
                       "2-token vocabulary, but the tokenizer adds that token (tokenizer.ggml.add_eos_token is "
                       "true): llama.cpp aborts on the first tokenization")
    kvs[-1] = kv("tokenizer.ggml.add_eos_token", BOOL, b"\x00")
    message, _ = problem(write(gguf_bytes(kvs), "no-eos.gguf"))
    assert message.startswith("key 'tokenizer.ggml.tokens': no token for byte 0x00")   # the next check


def test_a_bert_vocabulary_needs_its_separator_and_no_byte_tokens(write):
    tokens = [f"[unused{i}]" for i in range(102)]   # [CLS] is llama.cpp's default 101, [SEP] 102 is missing
    message, _ = problem(write(gguf_bytes(vocab_kvs(tokens, model="bert", arch="bert"))))
    assert message.startswith("key 'tokenizer.ggml.seperator_token_id' is missing")
    assert "(llama.cpp always does for a 'bert' vocabulary)" in message
    tokens.append("[SEP]")
    types = [1] * len(tokens)
    types[5] = 6
    message, offset = problem(write(gguf_bytes(vocab_kvs(tokens, model="bert", arch="bert", types=types)), "b.gguf"))
    assert message == ("key 'tokenizer.ggml.token_type': token 5 ('[unused5]') is typed BYTE, which llama.cpp "
                       "aborts on in a BERT (WPM) vocabulary")


def test_an_rwkv_vocabulary_needs_every_byte(write):
    tokens = [chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in range(256)] + ["\\\\"]
    assert read_info(write(gguf_bytes(vocab_kvs(tokens, model="rwkv", arch="rwkv6")), "full.gguf"))
    tokens.remove("\\x0a")
    message, _ = problem(write(gguf_bytes(vocab_kvs(tokens + ["\\nx"], model="rwkv", arch="rwkv6"))))
    assert message.startswith("key 'tokenizer.ggml.tokens': no token for byte 0x0A: llama.cpp's RWKV tokenizer")


def test_an_unknown_architecture_is_refused_before_llama_cpp_loads_it(write):
    from gitmodel.gguf_checks import supported_architectures

    known = supported_architectures()
    assert known is not None and {"llama", "gpt2", "bert", "t5", "rwkv6"} <= known   # asked of libllama
    data = gguf_bytes([kv("general.architecture", STRING, gstr("zzzzz"))])
    message, offset = problem(write(data))
    assert message.startswith("key 'general.architecture': unknown model architecture 'zzzzz': the installed "
                              f"llama.cpp supports {len(known)} architectures (")
    assert offset == data.index(gstr("zzzzz"))


@pytest.mark.parametrize("extra, expected", [
    ([kv_u32("llama.block_count", 0)], "key 'llama.block_count': 0 layers; llama.cpp asserts 1 to 512"),
    ([kv_u32("llama.block_count", 513)], "key 'llama.block_count': 513 layers; llama.cpp asserts 1 to 512"),
    ([kv_u32("llama.block_count", 2), kv_u32("llama.nextn_predict_layers", 3)],
     "key 'llama.nextn_predict_layers': 3 is not within 0 to block_count 2"),
    ([kv_u32("llama.block_count", 2), kv_u32("llama.expert_count", 8), kv_u32("llama.expert_used_count", 9)],
     "key 'llama.expert_count': expert_used_count 9 is above expert_count 8 (llama.cpp asserts on it)"),
    ([kv_u32("llama.block_count", 2), kv_u32("llama.expert_count", 8)],
     "key 'llama.expert_count': expert_count 8 but expert_used_count 0 (llama.cpp asserts on it)"),
    ([kv_u32("llama.block_count", 2), kv("llama.rope.scaling.type", STRING, gstr("zigzag"))],
     "key 'llama.rope.scaling.type': 'zigzag' is not one of none, linear, yarn, longrope"),
])
def test_hyperparameters_llama_cpp_asserts_on_are_refused(write, extra, expected):
    data = gguf_bytes([kv("general.architecture", STRING, gstr("llama")), *extra])
    assert problem(write(data))[0] == expected


def test_a_150k_token_vocabulary_is_checked_well_under_a_second(write):
    n = 150_000
    tokens = [*SPM_TOKENS, *(f"\u2581tok{i}" for i in range(n - len(SPM_TOKENS)))]
    path = write(gguf_bytes(vocab_kvs(tokens, types=[1] * n)))
    started = time.perf_counter()
    info = read_info(path)
    elapsed = time.perf_counter() - started

    assert info.metadata["tokenizer.ggml.tokens"] == ArraySummary("string", n)
    # ~0.1 s on a shared 2-core machine; generous against noise.
    assert elapsed < 0.5, elapsed


@pytest.mark.parametrize("model", ["no_vocab", "none"])
def test_a_checkpoint_without_a_tokenizer_is_refused(write, model):
    data = gguf_bytes([kv("tokenizer.ggml.model", STRING, gstr(model))])
    assert problem(write(data)) == (
        f"key 'tokenizer.ggml.model': {model!r} means the checkpoint has no tokenizer: llama.cpp aborts on the "
        "first tokenization", data.index(gstr(model)))
