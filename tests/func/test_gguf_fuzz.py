"""Fuzz the GGUF header reader with seeded mutations of a real demo checkpoint.

Every mutated or truncated file must either parse or raise InvalidGGUF: never
another exception, never a hang. Mutations aim at the header (tensor data is
never read, so flipping it proves nothing).

Then the differential half: every mutant our reader accepts (of the demo
checkpoint and of vocabulary files laid out as llama.cpp writes them, see
vocabfiles.py) is loaded by llama.cpp in a child, which must load or refuse
it, never die of a signal (gguf_mutants.py; many more in
benchmarks/bench_gguf_fuzz.py).
"""
from __future__ import annotations

import random
import signal
import struct
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from gitmodel.demo import build
from gitmodel.errors import InvalidGGUF
from gitmodel.gguf import GGUFInfo, read_info

CASES = 500
MAX_SECONDS_PER_CASE = 1.0
# Values that break length and count fields in interesting ways.
EXTREMES = [0, 1, 7, 63, 64, 65, 255, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


class Hang(Exception):
    pass


@contextmanager
def deadline(seconds: float):
    """Turn a hang into a failure instead of a stuck test run (POSIX only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[bytes, GGUFInfo]:
    path = build(tmp_path_factory.mktemp("demo"))["sentiment-v1"]
    return path.read_bytes(), read_info(path)


def header_regions(data: bytes, info: GGUFInfo) -> list[tuple[int, int]]:
    """Byte ranges worth mutating: fixed header and scalar keys, the whole
    metadata, the tensor table."""
    first_tensor = info.tensors[0].name.encode()
    table_start = data.index(struct.pack("<Q", len(first_tensor)) + first_tensor)
    return [(0, 600), (0, table_start), (table_start, info.data_offset)]


def mutate(data: bytes, info: GGUFInfo, rng: random.Random) -> tuple[str, bytes]:
    regions = header_regions(data, info)
    start, end = rng.choice(regions)
    position = rng.randrange(start, end)
    mutated = bytearray(data)
    kind = rng.choice(["bytes", "bit", "field", "truncate", "delete", "insert"])
    if kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(start, end)] = rng.randrange(256)
    elif kind == "bit":
        mutated[position] ^= 1 << rng.randrange(8)
    elif kind == "field":
        value = rng.choice(EXTREMES + [rng.getrandbits(64)])
        width = rng.choice([4, 8])
        mutated[position : position + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    elif kind == "truncate":
        # Mostly inside the header, sometimes inside the tensor data.
        cut = position if rng.random() < 0.8 else rng.randrange(len(data))
        del mutated[cut:]
    elif kind == "delete":
        del mutated[position : position + rng.randint(1, 16)]
    else:
        mutated[position:position] = rng.randbytes(rng.randint(1, 16))
    return kind, bytes(mutated)


@pytest.mark.slow
def test_mutated_checkpoints_parse_or_raise_invalid_gguf(checkpoint, tmp_path):
    data, info = checkpoint
    path = tmp_path / "fuzzed.gguf"
    failures: list[str] = []
    outcomes = {"parsed": 0, "rejected": 0}
    for seed in range(CASES):
        kind, mutated = mutate(data, info, random.Random(seed))
        path.write_bytes(mutated)
        started = time.perf_counter()
        try:
            with deadline(5 * MAX_SECONDS_PER_CASE):
                result = read_info(path)
        except InvalidGGUF:
            outcomes["rejected"] += 1
        except Exception as error:  # noqa: BLE001 - the point is to catch anything else
            failures.append(f"seed {seed} ({kind}): {type(error).__name__}: {error}")
            continue
        else:
            outcomes["parsed"] += 1
            for tensor in result.tensors:
                if result.data_offset + tensor.offset + tensor.nbytes > len(mutated):
                    failures.append(f"seed {seed} ({kind}): accepted tensor {tensor.name!r} outside the file")
        elapsed = time.perf_counter() - started
        if elapsed > MAX_SECONDS_PER_CASE:
            failures.append(f"seed {seed} ({kind}): took {elapsed:.2f} s")

    assert failures == []
    # The mutations must exercise both outcomes to mean anything.
    assert outcomes["rejected"] > CASES // 4, outcomes
    assert outcomes["parsed"] > 10, outcomes


# -- differential: what our reader accepts, llama.cpp must load or refuse, never abort ----

DIFFERENTIAL_MUTANTS_PER_FILE = 250


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, checkpoint):
    import gguf_mutants
    import vocabfiles

    import llama_cpp  # noqa: F401 - imported once here, before the children fork

    folder = tmp_path_factory.mktemp("vocabs")
    files = vocabfiles.build_all(folder)
    demo = folder / "sentiment-v1.gguf"
    demo.write_bytes(checkpoint[0])
    return ([gguf_mutants.Seed.load(name, path, vocab_only=True) for name, path in files.items()]
            + [gguf_mutants.Seed.load("demo", demo, vocab_only=False)])


def test_the_unmutated_files_load_in_llama_cpp(seeds):
    from gitmodel import loadcheck

    for seed in seeds:
        assert loadcheck.run_forked(seed.info.path, vocab_only=seed.vocab_only).status == loadcheck.LOADED, seed.name


@pytest.mark.slow
def test_llama_cpp_never_aborts_on_a_mutant_our_reader_accepts(seeds, tmp_path):
    import gguf_mutants

    tally = gguf_mutants.Tally()
    for seed in seeds:
        gguf_mutants.run(seed, range(DIFFERENTIAL_MUTANTS_PER_FILE), tmp_path, tally)
    print(tally.line())
    assert tally.aborts == []
    # A few hundred mutants reached llama.cpp, and the checks refused the rest.
    assert tally.accepted >= 250, tally.line()
    assert tally.refused_by_us >= 250, tally.line()
    # Mutants that only a content check refuses were made, and refused.
    assert {"token", "shrink_array"} <= set(tally.refusal_kinds), tally.refusal_kinds
