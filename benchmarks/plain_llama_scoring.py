"""Our llama runner against a plain llama-cpp-python loop doing the same scoring.

    python benchmarks/plain_llama_scoring.py [--model M] [--evalset E] [--rounds 7]

Both score every demo review the way the runner does: each label's
log-probability as the continuation of ``input + " " + label`` after the
input, from a float64 log-softmax of the last position's logits (no
``logits_all``), one forward pass per review. Two plain loops are timed:

* ``plain``: the same work written the obvious way with llama-cpp-python's
  high-level calls (``Llama.tokenize``, ``Llama.reset``, ``Llama.eval``),
  tokenizing ``input + " " + label`` per label as the runner must to be exact
  for any tokenizer;
* ``minimal``: the fastest honest loop for this eval set, which tokenizes each
  label once up front (right for the demo's tokenizer, not for every one).

Rounds interleave the three so that a noisy, shared machine slows them alike;
the figures are medians over rounds. Without ``--model`` the demo is built into
a temp folder first. This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def load(path: Path, n_threads: int, n_ctx: int):
    import llama_cpp

    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                           n_gpu_layers=0, seed=0, verbose=False)


def log_total(logits: np.ndarray) -> float:
    wide = logits.astype(np.float64)
    top = wide.max()
    return float(top + np.log(np.exp(wide - top).sum()))


def plain_loop(llm, rows: list[dict]) -> list[str]:
    """The same scoring as the runner, with llama-cpp-python's high-level calls."""
    import llama_cpp

    n_vocab = llm.n_vocab()
    answers = []
    for row in rows:
        text = row["input"].encode()
        prompt = llm.tokenize(text)
        llm.reset()
        llm.eval(prompt)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        total = log_total(logits)
        scores = []
        for label in row["labels"]:
            full = llm.tokenize(text + b" " + label.encode())
            assert full[:len(prompt)] == prompt and len(full) == len(prompt) + 1, "single-token labels only"
            scores.append(float(logits[full[-1]]) - total)
        answers.append(row["labels"][int(np.argmax(scores))])
    return answers


def minimal_loop(llm, rows: list[dict]) -> list[str]:
    """Label tokens looked up once: the least work that gives the same answers on the demo."""
    import llama_cpp

    n_vocab = llm.n_vocab()
    label_ids: dict[str, int] = {}
    answers = []
    for row in rows:
        prompt = llm.tokenize(row["input"].encode())
        llm.reset()
        llm.eval(prompt)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        total = log_total(logits)
        scores = []
        for label in row["labels"]:
            if label not in label_ids:
                (label_ids[label],) = llm.tokenize(label.encode(), add_bos=False)
            scores.append(float(logits[label_ids[label]]) - total)
        answers.append(row["labels"][int(np.argmax(scores))])
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF checkpoint (default: the demo's sentiment-v2)")
    parser.add_argument("--evalset", type=Path, help="eval set JSONL (default: the demo's sentiment.jsonl)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=512)
    args = parser.parse_args()

    from gitmodel.runners.base import Example, RunSettings
    from gitmodel.runners.llama import LlamaRunner

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None or args.evalset is None:
            from gitmodel.demo import build

            built = build(tmp)
        model = args.model or built["sentiment-v2"]
        evalset = args.evalset or built["sentiment"]
        rows = [json.loads(line) for line in evalset.read_text().splitlines() if line.strip()]
        examples = [Example(id=r["id"], input=r["input"], expected=r.get("expected"),
                            labels=tuple(r["labels"]), category=r.get("category")) for r in rows]

        llm = load(model, args.threads, args.n_ctx)
        runner = LlamaRunner(model, RunSettings(n_ctx=args.n_ctx, n_threads=args.threads))
        timings: dict[str, list[float]] = {"plain": [], "minimal": [], "runner": []}
        answers = {}
        jobs = {
            "plain": lambda: plain_loop(llm, rows),
            "minimal": lambda: minimal_loop(llm, rows),
            "runner": lambda: [p.label for p in runner.predict(examples)],
        }
        for job in jobs.values():   # warm-up: caches, page faults, thread pools
            job()
        for _ in range(args.rounds):
            for name, job in jobs.items():
                start = time.perf_counter()
                answers[name] = job()
                timings[name].append(time.perf_counter() - start)
        runner.close()
        llm.close()

    if not (answers["plain"] == answers["minimal"] == answers["runner"]):
        print("error: the loops disagree on some answers", file=sys.stderr)
        return 1
    n = len(rows)
    print(f"{model.name} on {evalset.name}: {n} examples, {args.rounds} rounds, {args.threads} thread(s)")
    for name, seconds in timings.items():
        print(f"  {name:8s} median {n / statistics.median(seconds):8.0f} examples/s"
              f"   (rounds: {' '.join(f'{n / s:.0f}' for s in seconds)})")
    for base in ("plain", "minimal"):
        ratios = [r / b for r, b in zip(timings["runner"], timings[base])]
        print(f"  runner / {base}: median ratio {statistics.median(ratios):.3f}"
              f"   (ratio of medians {statistics.median(timings['runner']) / statistics.median(timings[base]):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
