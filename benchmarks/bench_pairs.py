"""Several models in one repository: a no-op ``dvc repro`` and ``git model pairs`` on 20 declared
pairs (10 models x 5 eval sets, demo-sized) side by side with a one-pair repository.

    python benchmarks/bench_pairs.py [--runs 5] [--dir DIR] [--keep]

Builds two git-model repositories with the demo checkpoints (real GGUF files, tracked with
``git model add``) and slices of the demo eval set (tracked with ``git model evalset add``):

* ``many``: 10 models and 5 eval sets, 20 pairs declared (each model on 2 eval sets, through
  ``evalset add --for``); ``dvc repro`` evaluates exactly those 20 with llama.cpp;
* ``one``: 1 model, 1 eval set, 1 pair.

After each repository is evaluated and committed, it times (median of --runs, rounds interleaved so
that a noisy machine slows both alike): a no-op ``dvc repro`` (every pair up to date), ``dvc status``,
and ``git model pairs`` (the table with each pair's staleness). It prints the figures and the ratios
against the goals: the no-op ``dvc repro`` of ``many`` within 2x of ``one``, and ``git model pairs``
under 0.3 s. This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import benchkit

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
MODELS, EVALSETS, PER_MODEL, EXAMPLES = 10, 5, 2, 20


def sh(cwd: Path, *cmd: str, check: bool = True) -> str:
    return benchkit.sh(cwd, *cmd, env=ENV, check=check)


def build(repo: Path, demo: Path, models: int, evalsets: int, per_model: int) -> int:
    """A repository of ``models`` x ``evalsets`` with ``per_model`` eval sets per model, evaluated and
    committed; returns the number of pairs `dvc repro` ran."""
    repo.mkdir(parents=True)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "Bench")
    sh(repo, "git", "config", "user.email", "bench@example.com")
    sh(repo, "git-model", "init")
    lines = (demo / "sentiment.jsonl").read_text().splitlines(keepends=True)
    weights = sorted(demo.glob("sentiment-v*.gguf"))
    names = [f"m{i:02d}" for i in range(models)]
    for i, name in enumerate(names):
        shutil.copy(weights[i % len(weights)], repo / "models" / f"{name}.gguf")
        sh(repo, "git-model", "add", f"models/{name}.gguf")
    for j in range(evalsets):
        (repo / "evalsets" / f"e{j}.jsonl").write_text("".join(lines[j * EXAMPLES:(j + 1) * EXAMPLES]))
        paired = [n for i, n in enumerate(names) if j in {(i + k) % evalsets for k in range(per_model)}]
        sh(repo, "git-model", "evalset", "add", f"evalsets/e{j}.jsonl", *[a for n in paired for a in ("--for", n)])
    sh(repo, "git", "commit", "-q", "-m", "models and eval sets")
    ran = len(re.findall(r"Running stage 'eval@", sh(repo, "dvc", "repro")))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "evaluated")
    return ran


def timed(repo: Path, *cmd: str) -> float:
    start = time.perf_counter()
    sh(repo, *cmd)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from gitmodel.demo import build as build_demo

    with benchkit.scratch("bench-pairs-", args.dir, args.keep) as base:
        demo = base / "demo"
        demo.mkdir()
        build_demo(demo)
        repos = {"many": base / "many", "one": base / "one"}
        shapes = {"many": (MODELS, EVALSETS, PER_MODEL), "one": (1, 1, 1)}
        for name, repo in repos.items():
            start = time.perf_counter()
            ran = build(repo, demo, *shapes[name])
            print(f"{name}: {shapes[name][0]} models x {shapes[name][1]} eval sets, dvc repro ran {ran} pairs "
                  f"({time.perf_counter() - start:.1f} s to build and evaluate)")
            if sh(repo, "dvc", "status").strip() != "Data and pipelines are up to date.":
                raise SystemExit(f"{name}: not up to date after dvc repro")
        commands = {"dvc repro (no-op)": ("dvc", "repro"), "dvc status": ("dvc", "status"),
                    "git model pairs": ("git-model", "pairs")}
        times: dict = {(r, c): [] for r in repos for c in commands}
        for _ in range(args.runs):
            for label, cmd in commands.items():
                for name, repo in repos.items():
                    times[(name, label)].append(timed(repo, *cmd))
        print(f"\nmedians of {args.runs} runs (seconds)")
        print(f"{'':22}{'20 pairs':>10}{'1 pair':>10}{'ratio':>8}")
        for label in commands:
            many, one = (statistics.median(times[(r, label)]) for r in ("many", "one"))
            print(f"{label:22}{many:10.3f}{one:10.3f}{many / one:8.2f}")
        noop = statistics.median(times[("many", "dvc repro (no-op)")]) / statistics.median(times[("one", "dvc repro (no-op)")])
        pairs = statistics.median(times[("many", "git model pairs")])
        print(f"\ngoal: no-op dvc repro of 20 pairs within 2x of 1 pair: {noop:.2f}x "
              f"({'met' if noop <= 2 else 'NOT met'})")
        print(f"goal: git model pairs under 0.3 s on 20 pairs: {pairs:.3f} s ({'met' if pairs < 0.3 else 'NOT met'})")


if __name__ == "__main__":
    main()
