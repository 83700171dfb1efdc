"""`git model drift` on a big production log, side by side with a plain numpy / pandas reference.

    python benchmarks/bench_drift.py [--lines 1000000] [--runs 3] [--dir DIR] [--keep]

Writes a production log of ``--lines`` records (our format, generated words of 2-40 per input, labels,
confidences, categories; one day file) and a 20,000-line baseline window, in a fresh git-model
repository. Then it times, each in its own process, in turns (--runs rounds), with the peak memory of the
whole process tree (PSS: pages the workers share with the parent counted once) and its CPU time:

* ``ours``: ``git model drift bench --log big.jsonl --baseline-log base.jsonl --json`` (streamed: every
  signal profiled, PSI per signal), with every core (byte ranges of the log profiled by worker processes
  and added up) and with ``--workers 1`` (read in the one process);
* ``pandas``: ``pandas.read_json(lines=True)`` of the same log, then the same numpy on one signal
  (input length: quantile bins of the baseline + ``searchsorted`` + the PSI), when pandas is installed;
* ``merge 52``: loading and adding 52 weekly profiles (``drift --profile`` x 52, in-process core);
* ``PSI core``: our counting and PSI on 10M vs 10M values (``drift.bin_edges`` + ``drift.bin_counts``
  + ``drift.psi_aligned``) against the numpy reference (``np.quantile`` + ``np.searchsorted`` +
  ``np.bincount`` + the formula), medians of --runs.

Goals on 2 cores: the 1M-line log under 10 s and 300 MB peak; 52 profiles merged under 0.3 s; the PSI
core within 1.5x of the numpy reference. Measured on the project's 2-core machine, shared with other
work (load average 1.2-2.5 while it ran), medians of 3, 1M lines (398 MB):

    ours, every core        3.98 s   peak  63 MB   cpu 6.73 s
    ours, --workers 1       6.73 s   peak  52 MB   cpu 6.62 s
    pandas + numpy         14.88 s   peak 3747 MB  cpu 8.98 s   (ours 0.27x its time)
    merge 52 profiles      14 ms;  PSI core 1.03x numpy's

With the other core busy (load 2.3-3.6) the pool gains little: 8.3 s every core, 7.7 s in one process.
This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchkit
import numpy as np

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
WORDS = ("the food was great and service slow delivery late price fair pizza soup staff rude friendly "
         "package damaged order arrived cold warm tasty bland cheap expensive really very not").split()

MEASURE = """
import os, resource, subprocess, sys, time

def tree_memory(pid):
    # the memory of pid and of every process below it (the workers): PSS, pages a fork shares counted
    # once between the processes that share them (RSS where the kernel gives no PSS)
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            try:
                with open(f"/proc/{p}/smaps_rollup") as rollup:
                    total += sum(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
            except FileNotFoundError:
                with open(f"/proc/{p}/status") as status:
                    total += sum(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as children:
                todo += [int(c) for c in children.read().split()]
        except OSError:
            pass
    return total

start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
peak = 0
while proc.poll() is None:
    peak = max(peak, tree_memory(proc.pid))
    time.sleep(0.02)
took = time.perf_counter() - start
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(took, max(peak, used.ru_maxrss * 1024), used.ru_utime + used.ru_stime, proc.returncode)
"""

PANDAS_REF = """
import sys
import numpy as np
import pandas as pd
base = pd.read_json(sys.argv[2], lines=True)
log = pd.read_json(sys.argv[1], lines=True)
e = base["input"].str.len().to_numpy(dtype=float)
a = log["input"].str.len().to_numpy(dtype=float)
edges = np.unique(np.quantile(e, np.linspace(0, 1, 11)))
ce = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1) + 0.5
ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) + 0.5
ce, ca = ce / ce.sum(), ca / ca.sum()
print(float(np.sum((ca - ce) * np.log(ca / ce))))
"""


def write_log(path: Path, n: int, seed: int, shift: float = 0.0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            words = rng.randint(2, 40 if rng.random() > shift else 80)
            label = "positive" if rng.random() < 0.55 else "negative"
            record = {"schema_version": 1, "id": f"{seed}-{i}", "ts": f"2026-11-{1 + i * 28 // n:02d}T"
                      f"{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}.000Z", "model": "bench", "version": "v1.0.0",
                      "stage": "prod", "input": " ".join(rng.choice(WORDS) for _ in range(words)), "output": label,
                      "label": label, "confidence": round(rng.uniform(0.5, 1.0), 4), "output_tokens": 1,
                      "latency_ms": round(rng.uniform(5, 50), 3), "status": 200,
                      "category": rng.choice(("food", "service", "delivery", "price"))}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


def measured(cmd: list[str], cwd: Path) -> tuple[float, int, float, int]:
    """(wall seconds, peak memory of the process tree in bytes, CPU seconds of the tree, exit code)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=cwd, capture_output=True, text=True, env=ENV,
                         check=True).stdout.split()
    return float(out[0]), int(out[1]), float(out[2]), int(out[3])


def report(name: str, runs: list[tuple[float, int, float, int]], goal: str = "") -> float:
    wall = statistics.median(r[0] for r in runs)
    print(f"{name:44} {wall:6.2f} s  peak {max(r[1] for r in runs) / 1e6:5.0f} MB  "
          f"cpu {statistics.median(r[2] for r in runs):6.2f} s  (exit {runs[0][3]}){goal}")
    return wall


def psi_core_ours(expected: np.ndarray, actual: np.ndarray) -> float:
    from gitmodel import drift

    edges = drift.bin_edges(expected)
    return drift.psi_aligned(drift.bin_counts(expected, edges), drift.bin_counts(actual, edges))


def psi_core_numpy(expected: np.ndarray, actual: np.ndarray) -> float:
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, 11)))
    ce = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) + 0.5
    ca = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) + 0.5
    ce, ca = ce / ce.sum(), ca / ca.sum()
    return float(np.sum((ca - ce) * np.log(ca / ce)))


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="parent of the work folder (default: the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    git_model = [str(Path(sys.executable).parent / "git-model")]
    with benchkit.scratch("bench-drift-", args.dir, args.keep) as work:
        repo = work / "repo"
        repo.mkdir()
        benchkit.sh(repo, "git", "init", "-q")
        benchkit.sh(repo, *git_model, "init", env=ENV)
        big, base = work / "big.jsonl", work / "base.jsonl"
        start = time.perf_counter()
        write_log(big, args.lines, seed=1, shift=0.1)
        write_log(base, 20_000, seed=2)
        print(f"log: {args.lines:,} lines, {big.stat().st_size / 1e6:.0f} MB (written in "
              f"{time.perf_counter() - start:.1f} s); baseline window 20,000 lines")

        drift = [*git_model, "drift", "bench", "--log", str(big), "--baseline-log", str(base), "--json"]
        commands = {"ours": drift, "one": [*drift, "--workers", "1"]}
        try:
            import pandas  # noqa: F401
        except ImportError:
            print("pandas  not installed: reference skipped")
        else:
            commands["pandas"] = [sys.executable, "-c", PANDAS_REF, str(big), str(base)]
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        runs: dict[str, list] = {name: [] for name in commands}
        for _ in range(args.runs):          # in turns, so that a change of load falls on each alike
            for name, cmd in commands.items():
                runs[name].append(measured(cmd, repo))
        t_ours = report("ours    git model drift (every core)", runs["ours"], "  goal < 10 s, < 300 MB")
        t_one = report("ours    git model drift --workers 1", runs["one"])
        if "pandas" in runs:
            t_ref = report("pandas  read_json + numpy (1 signal)", runs["pandas"])
            print(f"        -> ours {t_ours / t_ref:.2f}x pandas' time ({t_one / t_ref:.2f}x in one process)")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        # 52 weekly profiles, each saved by `drift --save-profile`, then loaded and added
        from gitmodel import profiles

        week = work / "week.jsonl"
        write_log(week, 5_000, seed=3)
        saved = work / "week.json"
        subprocess.run([*git_model, "drift", "bench", "--log", str(week), "--baseline-log", str(base),
                        "--save-profile", str(saved)], cwd=repo, capture_output=True, env=ENV)
        files = []
        for i in range(52):
            files.append(work / f"week{i:02d}.json")
            shutil.copy(saved, files[-1])
        t_merge = timed(lambda: profiles.merge([profiles.load(f) for f in files]), max(args.runs, 5))
        print(f"merge   52 weekly profiles (load + add): {t_merge * 1000:6.1f} ms  (goal < 300 ms)")

        rng = np.random.default_rng(0)
        expected, actual = rng.normal(0, 1, 10_000_000), rng.normal(0.1, 1.1, 10_000_000)
        assert abs(psi_core_ours(expected, actual) - psi_core_numpy(expected, actual)) < 0.05
        t_core = timed(lambda: psi_core_ours(expected, actual), args.runs)
        t_np = timed(lambda: psi_core_numpy(expected, actual), args.runs)
        print(f"PSI     core, 10M vs 10M values: ours {t_core:.2f} s, numpy {t_np:.2f} s -> {t_core / t_np:.2f}x "
              "(goal <= 1.5x)")
        from gitmodel import drift

        edges = drift.bin_edges(expected)
        t_count = timed(lambda: drift.bin_counts(actual, edges), args.runs)
        print(f"count   10M values against {len(edges)} stored edges: {t_count:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
