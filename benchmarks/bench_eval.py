"""git model eval against a plain llama-cpp-python loop doing the same scoring.

    python benchmarks/bench_eval.py [--examples 400 4000 20000] [--repeat 5]

For each eval set size, in a scratch git-model repository holding the demo
checkpoint sentiment-v2 and the demo reviews (repeated with fresh ids up to
the size), three things run as whole process invocations, interleaved so that
a noisy machine slows them alike:

  (a) plain  a plain llama-cpp-python loop doing the same scoring
             (python benchmarks/plain_llama_scoring.py's plain loop: load, tokenize,
             one forward pass per review, log-softmax of the last logits)
  (b) eval   git model eval sentiment --evalset sentiment --force
  (c) hit    git model eval sentiment --evalset sentiment   (a cache hit)

It prints medians, the overhead ratio b/a (goal <= 1.10) and the time of c
(goal < 0.5 s whatever the eval set size). This is a script, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

PLAIN = r"""
import json, sys
sys.path.insert(0, {bench!r})
from pathlib import Path
import plain_llama_scoring as p
rows = [json.loads(l) for l in Path({evalset!r}).read_text().splitlines()]
llm = p.load(Path({model!r}), n_threads=1, n_ctx=2048)
answers = p.plain_loop(llm, rows)
assert len(answers) == len(rows)
"""


def build_repo(where: Path, examples: int) -> Path:
    from gitmodel.demo import build

    demo = where / "demo"
    build(demo)
    repo = where / f"repo-{examples}"
    repo.mkdir()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")

    def run(*cmd):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True, env=env)

    run("git", "init", "-q")
    run("git", "config", "user.email", "bench@example.com")
    run("git", "config", "user.name", "bench")
    run("git", "model", "init")
    shutil.copy(demo / "sentiment-v2.gguf", repo / "models/sentiment.gguf")
    reviews = [json.loads(line) for line in (demo / "sentiment.jsonl").read_text().splitlines()]
    with open(repo / "evalsets/sentiment.jsonl", "w") as f:
        for i in range(examples):
            row = dict(reviews[i % len(reviews)], id=f"x{i:07d}")
            f.write(json.dumps(row) + "\n")
    run("git", "model", "add", "models/sentiment.gguf")
    run("git", "model", "evalset", "add", "evalsets/sentiment.jsonl")
    run("git", "commit", "-qm", "bench")
    return repo


def timed(cmd: list[str], cwd: Path) -> float:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", CI="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, nargs="+", default=[400, 4000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"{'examples':>9} {'(a) plain':>10} {'(b) eval':>10} {'b/a':>6} {'(c) hit':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        for n in args.examples:
            where = Path(tmp) / f"n{n}"
            where.mkdir()
            repo = build_repo(where, n)
            plain = [sys.executable, "-c", PLAIN.format(bench=str(HERE), evalset=str(repo / "evalsets/sentiment.jsonl"),
                                                        model=str(repo / "models/sentiment.gguf"))]
            evaluate = ["git", "model", "eval", "sentiment", "--evalset", "sentiment"]
            a, b, c = [], [], []
            timed(evaluate, repo)  # warm the file cache and the md5 state once
            for _ in range(args.repeat):
                a.append(timed(plain, repo))
                b.append(timed(evaluate + ["--force"], repo))
                c.append(timed(evaluate, repo))
            ma, mb, mc = (statistics.median(x) for x in (a, b, c))
            print(f"{n:>9} {ma:>9.3f}s {mb:>9.3f}s {mb / ma:>6.2f} {mc:>8.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
