"""Differential fuzzing of our GGUF checks against llama.cpp itself.

A mutant is a real GGUF file with one seeded change aimed where llama.cpp
trusts the contents: random bytes, 8-byte counts and lengths, one token
overwritten by another of the same length (a duplicate), array lengths
(shortened consistently, or the length field alone), special token ids,
add_*_token flags, token types, the tokenizer family, truncations. Every mutant our reader accepts
is loaded by llama.cpp in a forked child (vocabulary only for vocabulary
files, a full load with a context and a decode for checkpoints): it must
load or refuse with an error, never die of a signal.

Shared by tests/func/test_gguf_fuzz.py and benchmarks/bench_gguf_fuzz.py.
"""
from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import loadcheck
from gitmodel.errors import InvalidGGUF
from gitmodel.gguf import GGUFInfo, read_info

ARRAY, STRING, BOOL, INT32, UINT32 = 9, 8, 7, 5, 4
EXTREMES = [0, 1, 2, 7, 255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1]
KINDS = ("bytes", "count", "token", "shrink_array", "array_length", "special_id", "flag", "token_type",
         "tokenizer", "truncate")
# llama.cpp's tokenizer models: a vocabulary read by another family's rules
TOKENIZER_MODELS = ("llama", "gpt2", "bert", "t5", "rwkv", "plamo2", "gemma4", "whitespace", "no_vocab")


@dataclass
class Seed:
    """A file to mutate and where its interesting fields are."""

    name: str
    data: bytes
    info: GGUFInfo
    vocab_only: bool
    token_fields: list[tuple[int, int]] = field(default_factory=list)   # (length offset, length)

    @classmethod
    def load(cls, name: str, path: Path, vocab_only: bool) -> Seed:
        data = path.read_bytes()
        info = read_info(path)
        seed = cls(name, data, info, vocab_only)
        if "tokenizer.ggml.tokens" in info.value_spans:
            _, start, _ = info.value_spans["tokenizer.ggml.tokens"]
            (count,) = struct.unpack_from("<Q", data, start + 4)
            pos = start + 12
            for _ in range(count):
                (length,) = struct.unpack_from("<Q", data, pos)
                seed.token_fields.append((pos, length))
                pos += 8 + length
        return seed

    def header_end(self) -> int:
        return self.info.data_offset if self.info.tensors else len(self.data)


def _arrays(seed: Seed) -> list[tuple[str, int]]:
    return [(key, start) for key, (vtype, start, _) in seed.info.value_spans.items() if vtype == ARRAY]


def _scalars(seed: Seed, value_type: int) -> list[tuple[str, int]]:
    return [(key, start) for key, (vtype, start, _) in seed.info.value_spans.items() if vtype == value_type]


def mutate(seed: Seed, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutant of ``seed``: (kind, bytes)."""
    data = bytearray(seed.data)
    end = seed.header_end()
    kind = rng.choice(KINDS)
    if kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(end)] = rng.randrange(256)
    elif kind == "count":
        # a u64 length or count: the fixed header's, an array's, a token's
        fields = [8, 16] + [start + 4 for _, start in _arrays(seed)]
        fields += [pos for pos, _ in rng.sample(seed.token_fields, min(20, len(seed.token_fields)))]
        pos = rng.choice(fields)
        (old,) = struct.unpack_from("<Q", data, pos)
        new = rng.choice([old + 1, max(old - 1, 0), old * 2, old // 2, rng.choice(EXTREMES)])
        struct.pack_into("<Q", data, pos, new % 2**64)
    elif kind == "token" and len(seed.token_fields) > 1:
        # overwrite one token with another of the same length: a duplicate
        by_length: dict[int, list[int]] = {}
        for pos, length in seed.token_fields:
            by_length.setdefault(length, []).append(pos)
        groups = [positions for positions in by_length.values() if len(positions) > 1]
        if groups:
            source, target = rng.sample(rng.choice(groups), 2)
            (length,) = struct.unpack_from("<Q", data, source)
            data[target + 8:target + 8 + length] = seed.data[source + 8:source + 8 + length]
    elif kind == "shrink_array":
        # drop the last elements of a fixed-size array and fix its length:
        # a well-formed file whose scores or token types are shorter than its tokens
        candidates = []
        for key, start in _arrays(seed):
            element_type, length = struct.unpack_from("<IQ", seed.data, start)
            if element_type in (INT32, 6) and length:
                candidates.append((start, element_type, length))
        if candidates:
            start, _, length = rng.choice(candidates)
            drop = rng.randint(1, min(length, 4))
            struct.pack_into("<Q", data, start + 4, length - drop)
            cut = start + 12 + 4 * (length - drop)
            del data[cut:cut + 4 * drop]
            if seed.info.tensors:   # keep the tensor data where it was: pad the header back
                data[seed.info.data_offset - 4 * drop:seed.info.data_offset - 4 * drop] = bytes(4 * drop)
    elif kind == "array_length":
        arrays = _arrays(seed)
        if arrays:
            _, start = rng.choice(arrays)
            (length,) = struct.unpack_from("<Q", data, start + 4)
            struct.pack_into("<Q", data, start + 4, max(0, length + rng.choice([-2, -1, 1, 2])))
    elif kind == "special_id":
        ids = [(key, start) for key, start in _scalars(seed, UINT32) if key.endswith("_token_id")]
        if ids:
            _, start = rng.choice(ids)
            n_tokens = len(seed.token_fields) or 1
            value = rng.choice([rng.randrange(n_tokens), n_tokens - 1, n_tokens, n_tokens + 1, 2**31, 2**32 - 1])
            struct.pack_into("<I", data, start, value)
    elif kind == "flag":
        flags = _scalars(seed, BOOL)
        if flags:
            _, start = rng.choice(flags)
            data[start] = rng.choice([0, 1, 2, 255])
    elif kind == "token_type":
        span = seed.info.value_spans.get("tokenizer.ggml.token_type")
        if span is not None:
            (length,) = struct.unpack_from("<Q", data, span[1] + 4)
            for _ in range(rng.randint(1, 4)):
                index = rng.randrange(length)
                struct.pack_into("<i", data, span[1] + 12 + 4 * index, rng.choice([0, 1, 2, 3, 4, 5, 6, 7, -1]))
    elif kind == "tokenizer" and "tokenizer.ggml.model" in seed.info.value_spans:
        _, start, stop = seed.info.value_spans["tokenizer.ggml.model"]
        name = rng.choice(TOKENIZER_MODELS).encode()
        data[start:stop] = struct.pack("<Q", len(name)) + name
    else:
        kind = "truncate"
        del data[rng.randrange(len(data)):]
    return kind, bytes(data)


@dataclass
class Tally:
    tried: int = 0
    refused_by_us: int = 0
    accepted: int = 0
    loaded: int = 0
    refused_by_llama: int = 0
    aborts: list[str] = field(default_factory=list)
    by_kind: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)   # our error, first words
    refusal_kinds: Counter = field(default_factory=Counter)   # mutation kinds refused by a content check

    def line(self) -> str:
        return (f"tried {self.tried}, accepted by us {self.accepted}, loaded {self.loaded}, "
                f"refused by llama.cpp {self.refused_by_llama}, aborts {len(self.aborts)}")


def run(seed: Seed, seeds: range, scratch: Path, tally: Tally, timeout: float = 30.0) -> None:
    """Mutate ``seed`` once per number in ``seeds`` and load every mutant we accept."""
    path = scratch / f"{seed.name}.mutant.gguf"
    for number in seeds:
        kind, mutant = mutate(seed, random.Random(f"{seed.name}:{number}"))
        path.write_bytes(mutant)
        tally.tried += 1
        try:
            read_info(path)
        except InvalidGGUF as error:
            tally.refused_by_us += 1
            tally.refusals[error.problem.split(":")[0][:40]] += 1
            if error.problem.startswith("key 'tokenizer."):
                tally.refusal_kinds[kind] += 1
            continue
        tally.accepted += 1
        tally.by_kind[kind] += 1
        outcome = loadcheck.run_forked(path, vocab_only=seed.vocab_only, timeout=timeout)
        if outcome.status == loadcheck.LOADED:
            tally.loaded += 1
        elif outcome.status == loadcheck.REFUSED:
            tally.refused_by_llama += 1
        else:
            kept = scratch / f"abort-{seed.name}-{number}.gguf"
            kept.write_bytes(mutant)
            tally.aborts.append(f"{seed.name} mutant {number} ({kind}): {outcome.detail} [kept as {kept}]")
