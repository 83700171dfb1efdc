"""Differential fuzz of our GGUF checks against llama.cpp, and what the child-process first load costs.

    python benchmarks/bench_gguf_fuzz.py [--mutants 1000] [--vocab-dir DIR] [--max-mib 8] [--scratch DIR]

Seeds: the vocabulary-only files of tests/func/vocabfiles.py (BPE, WordPiece,
Unigram, RWKV), the three demo checkpoints (loaded in full: context and
decode) and, with ``--vocab-dir`` (or $GITMODEL_LLAMA_VOCABS), llama.cpp's own
``ggml-vocab-*.gguf`` files up to ``--max-mib``: the llama-cpp-python source
distribution ships them in ``vendor/llama.cpp/models`` (``pip download
--no-deps --no-binary :all: llama-cpp-python==<version>``). Each seed gets
``--mutants`` seeded mutants (tests/func/gguf_mutants.py); every mutant our
reader accepts is loaded by llama.cpp in a forked child. It prints, per seed
and in total: mutants tried, accepted by us, loaded, refused by llama.cpp,
aborts (must be 0; each abort's file is kept in the scratch folder). Exit 1 on
any abort.

Then the cost of the child-process first load (gitmodel.loadcheck): a child
load of each demo checkpoint and of the largest real file, against loading it
in-process, and a remembered verdict (median of 5 each).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "func"))

import gguf_mutants  # noqa: E402
import vocabfiles  # noqa: E402

from gitmodel import loadcheck  # noqa: E402
from gitmodel.demo import build  # noqa: E402
from gitmodel.gguf import read_info  # noqa: E402


def seeds(scratch: Path, vocab_dir: Path | None, max_mib: float) -> list[gguf_mutants.Seed]:
    found = [gguf_mutants.Seed.load(name, path, vocab_only=True)
             for name, path in vocabfiles.build_all(scratch / "built").items()]
    demo = build(scratch / "demo")
    found += [gguf_mutants.Seed.load(name, path, vocab_only=False)
              for name, path in demo.items() if path.suffix == ".gguf"]
    if vocab_dir is not None:
        for path in sorted(vocab_dir.glob("ggml-vocab-*.gguf")):
            if path.stat().st_size <= max_mib * 2**20:
                found.append(gguf_mutants.Seed.load(path.stem.removeprefix("ggml-vocab-"), path, vocab_only=True))
    return found


def median_seconds(action, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_process_load(path: Path, vocab_only: bool) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = vocab_only
    model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
    assert model, path
    if not vocab_only:
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = context_params.n_batch = loadcheck.DEFAULT_N_CTX
        context = llama_cpp.llama_init_from_model(model, context_params)
        llama_cpp.llama_free(context)
    llama_cpp.llama_model_free(model)


_QUIET = None


def costs(all_seeds: list[gguf_mutants.Seed], scratch: Path) -> None:
    global _QUIET
    import ctypes

    import llama_cpp

    _QUIET = llama_cpp.llama_log_callback(lambda level, text, data: None)   # kept alive while llama.cpp logs
    llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))
    print("\nfirst-load cost (median of 5; 2 shared cores, noisy):")
    print(f"  {'file':<28} {'MiB':>7} {'reader':>8} {'child':>8} {'in-process':>11} {'remembered':>11}")
    real = [s for s in all_seeds if s.vocab_only and not s.name.startswith(tuple(vocabfiles.BUILDERS))]
    largest = max(real, key=lambda s: len(s.data), default=None)
    chosen = [s for s in all_seeds if not s.vocab_only][:1] + ([largest] if largest else [])
    repo = scratch / "memory-repo"
    (repo / ".dvc").mkdir(parents=True, exist_ok=True)
    for seed in chosen:
        path = seed.info.path
        reader = median_seconds(lambda: read_info(path))
        child = median_seconds(lambda: loadcheck.run_in_child(path, vocab_only=seed.vocab_only))
        inproc = median_seconds(lambda: in_process_load(path, seed.vocab_only))
        copy = repo / path.name
        copy.write_bytes(path.read_bytes())
        if not seed.vocab_only:
            loadcheck.ensure_loads(copy, root=repo)          # the first time: a child
            remembered = median_seconds(lambda: loadcheck.ensure_loads(copy, root=repo))
        else:
            remembered = float("nan")   # ensure_loads does full loads; a vocabulary has no weights
        print(f"  {seed.name:<28} {len(seed.data) / 2**20:>7.2f} {reader * 1000:>6.1f}ms {child * 1000:>6.0f}ms "
              f"{inproc * 1000:>9.0f}ms {remembered * 1000:>9.1f}ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=1000, help="mutants per seed file")
    parser.add_argument("--vocab-dir", type=Path, default=os.environ.get("GITMODEL_LLAMA_VOCABS"),
                        help="llama.cpp's models/ folder with ggml-vocab-*.gguf")
    parser.add_argument("--max-mib", type=float, default=8.0, help="skip real vocab files larger than this")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for mutants (default: a temp folder)")
    parser.add_argument("--no-costs", action="store_true", help="skip the first-load cost measurement")
    args = parser.parse_args()

    import llama_cpp  # noqa: F401 - once, before the children fork

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="gguf-fuzz-"))
    scratch.mkdir(parents=True, exist_ok=True)
    all_seeds = seeds(scratch, Path(args.vocab_dir) if args.vocab_dir else None, args.max_mib)
    total = gguf_mutants.Tally()
    started = time.perf_counter()
    print(f"{'seed':<20} {'MiB':>6} {'tried':>6} {'accepted':>9} {'loaded':>7} {'refused':>8} {'aborts':>7}")
    for seed in all_seeds:
        tally = gguf_mutants.Tally()
        gguf_mutants.run(seed, range(args.mutants), scratch, tally)
        print(f"{seed.name:<20} {len(seed.data) / 2**20:>6.2f} {tally.tried:>6} {tally.accepted:>9} "
              f"{tally.loaded:>7} {tally.refused_by_llama:>8} {len(tally.aborts):>7}", flush=True)
        for field in ("tried", "refused_by_us", "accepted", "loaded", "refused_by_llama"):
            setattr(total, field, getattr(total, field) + getattr(tally, field))
        total.aborts += tally.aborts
        total.refusals.update(tally.refusals)
    print(f"\ntotal: {total.line()}  ({time.perf_counter() - started:.0f} s)")
    print("most frequent refusals by our reader:")
    for problem, count in total.refusals.most_common(8):
        print(f"  {count:>6}  {problem}")
    for abort in total.aborts:
        print("ABORT", abort)
    if not args.no_costs:
        costs(all_seeds, scratch)
    return 1 if total.aborts else 0


if __name__ == "__main__":
    sys.exit(main())
