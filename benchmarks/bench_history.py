"""History commands at scale: git-model against the tools users would otherwise run, side by side.

Builds, in a temporary folder, a git-model repository with N releases of one
model (the metrics file changes in each; the model file is small), made quickly
with `git fast-import`: one commit and one annotated GTO tag per release, the
tag message being the one `git model release` writes. A few stage tags sit on
top. Then it times, a few repetitions each (medians), in one go:

    git model log                  vs  gto show
    git model log --json           vs  gto history --json
    git model diff A B             vs  dvc metrics diff A B      (A, B: releases far apart)
    floor: git for-each-ref + every metrics blob through one `git cat-file --batch`

and prints each pair's times and ratio. `--releases 100 1000` runs several
sizes and prints how each command grows per release. The first `git model log`
of a repository validates every metrics blob against the schema (and remembers
them by sha in .dvc/tmp/gitmodel/); that cold run is timed separately.

    python benchmarks/bench_history.py                       # 1,000 releases, 5 repetitions
    python benchmarks/bench_history.py --releases 100 1000 --repeat 3

Needs git, and git-model, gto and dvc on PATH (the project's venv).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchkit

MODEL = "bench"
EVALSET = "heldout"
METRICS = f"metrics/{MODEL}/{EVALSET}.json"
BASE_TIME = 1_700_000_000


def run(cmd, cwd, env, check=True, stdin=None, capture=False):
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc


def metrics_doc(i: int, n: int, model_md5: str, evalset_md5: str) -> dict:
    """A valid metrics file (schema_version 1) whose numbers drift from release to release."""
    acc = round(0.70 + 0.25 * i / max(n, 1) + 0.01 * ((i * 7919) % 5), 6)
    pos_fpr = round(max(0.0, 0.4 - 0.3 * i / max(n, 1)), 6)
    return {
        "schema_version": 1,
        "model": {"name": MODEL, "path": f"models/{MODEL}.gguf", "md5": model_md5},
        "evalset": {"name": EVALSET, "path": f"evalsets/{EVALSET}.jsonl", "md5": evalset_md5},
        "params": {"runner": "llama", "temperature": 0, "seed": 0, "max_tokens": 64, "n_ctx": 2048, "n_threads": 1,
                   "label_prefix": " ", "refusal_patterns": []},
        "runner": {"name": "llama", "version": "0.3.36", "llama_cpp_version": "bench"},
        "metrics": {
            "n": 400, "accuracy": acc,
            "accuracy_by_category": {"food": acc, "service": round(acc - 0.01, 6)},
            "labels": {"negative": {"precision": 0.9, "recall": acc, "fpr": 0.05, "support": 212},
                       "positive": {"precision": acc, "recall": 0.9, "fpr": pos_fpr, "support": 188}},
            "label_distribution": {"negative": 0.5, "positive": 0.5},
            "expected_distribution": {"negative": 0.53, "positive": 0.47},
            "label_psi": round(0.3 - 0.25 * i / max(n, 1), 6), "ties": 0,
            "confidence": {"mean": 0.8, "p10": 0.5, "p50": 0.85},
            "latency_ms": {"p50": 0.2 + (i % 7) / 100, "p95": 1.1},
        },
    }


def version_of(i: int) -> str:
    return f"v0.0.{i}"      # v0.0.100 and up: gto's table cuts them to 7 characters


def build(root: Path, n: int, env: dict) -> tuple[str, str]:
    """A repository with ``n`` releases of MODEL; returns the tags of two releases far apart."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from gitmodel import dvcyaml, history, refs

    run(["git", "init", "-q", "-b", "main"], root, env)
    run(["dvc", "init", "-q"], root, env)
    (root / "models").mkdir()
    (root / "evalsets").mkdir()
    model_bytes = b"GGUF" + bytes(1020)                      # small: the benchmark is about history
    (root / "models" / f"{MODEL}.gguf").write_bytes(model_bytes)
    model_md5 = hashlib.md5(model_bytes).hexdigest()
    (root / "models" / f"{MODEL}.gguf.dvc").write_text(
        f"outs:\n- md5: {model_md5}\n  size: {len(model_bytes)}\n  hash: md5\n  path: {MODEL}.gguf\n"
        "  meta:\n    lineage:\n      base_model: bench-base\n")
    (root / "models" / ".gitignore").write_text(f"/{MODEL}.gguf\n")
    evalset_md5 = hashlib.md5(b"bench").hexdigest()
    dvc_yaml = dvcyaml.template().replace("artifacts: {}", f"artifacts:\n  {MODEL}:\n    path: models/{MODEL}.gguf\n"
                                          "    type: model").replace(
        "foreach: {}", f"foreach:\n      {MODEL}-{EVALSET}: {{model: {MODEL}, evalset: {EVALSET}}}")
    (root / "dvc.yaml").write_text(dvc_yaml)
    (root / "params.yaml").write_text("eval:\n  temperature: 0\n  seed: 0\n")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-q", "-m", "bench repository"], root, env)

    stream = []

    def data(payload: bytes) -> None:
        stream.append(b"data %d\n" % len(payload) + payload + b"\n")

    for i in range(1, n + 1):
        when = BASE_TIME + 60 * i
        doc = metrics_doc(i, n, model_md5, evalset_md5)
        stream.append(b"commit refs/heads/main\nmark :%d\n" % i)
        stream.append(b"committer Bench <bench@example.com> %d +0000\n" % when)
        data(f"release {i}".encode())
        if i == 1:
            stream.append(b"from refs/heads/main^0\n")
        stream.append(f"M 100644 inline {METRICS}\n".encode())
        data((json.dumps(doc, indent=2) + "\n").encode())
        version = refs.Version.parse(version_of(i))
        record = {"schema_version": 1, "model": MODEL, "version": str(version), "path": f"models/{MODEL}.gguf",
                  "md5": model_md5, "size": len(model_bytes), "tracked_by": f"models/{MODEL}.gguf.dvc",
                  "lineage": {"base_model": "bench-base"}, "gguf": {},
                  "evalsets": {EVALSET: {"md5": evalset_md5, "metrics": history.headline(doc["metrics"])}}}
        stream.append(f"tag {MODEL}@{version}\nfrom :{i}\n".encode())
        stream.append(b"tagger Bench <bench@example.com> %d +0000\n" % (when + 1))
        data(refs.release_message(MODEL, version, f"release {i}", record).encode())
    stages = [("prod", max(1, n - 10)), ("staging", n), ("canary", n)]
    for counter, (stage, i) in enumerate(stages, start=1):
        stream.append(f"tag {MODEL}#{stage}#{counter}\nfrom :{i}\n".encode())
        stream.append(b"tagger Bench <bench@example.com> %d +0000\n" % (BASE_TIME + 60 * n + counter))
        data(f"Assigning stage {stage} to artifact {MODEL} version {version_of(i)}".encode())
    run(["git", "fast-import", "--quiet"], root, env, stdin=b"".join(stream))
    run(["git", "reset", "-q", "--hard", "main"], root, env)
    return f"{MODEL}@{version_of(max(1, n // 10))}", f"{MODEL}@{version_of(n)}"


def timed(cmd, cwd, env, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              shell=isinstance(cmd, str))
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return times


def has_diff_command(root: Path, env: dict) -> bool:
    proc = subprocess.run(["git", "model", "diff", "--help"], cwd=root, env=env, capture_output=True)
    return proc.returncode == 0


def sanity(root: Path, env: dict, n: int) -> list[str]:
    """What the outputs say, so the timings compare commands that did the same job."""
    notes = []
    ours = subprocess.run(["git", "model", "log", MODEL, "--json"], cwd=root, env=env, capture_output=True, text=True)
    entries = json.loads(ours.stdout)
    assert len(entries) == n, (len(entries), n)
    assert entries[0]["version"] == version_of(n) and entries[-1]["version"] == version_of(1), entries[0]
    assert all(e["metrics"][EVALSET]["n"] == 400 for e in entries)
    text = subprocess.run(["git", "model", "log", MODEL], cwd=root, env=env, capture_output=True, text=True).stdout
    notes.append(f"git model log lists {n} releases, newest {version_of(n)} first; "
                 f"{version_of(n)} printed whole: {version_of(n) in text.split()}")
    gto = subprocess.run(["gto", "show"], cwd=root, env=env, capture_output=True, text=True).stdout
    row = next((line for line in gto.splitlines() if line.startswith("│") and f" {MODEL} " in line), "")
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    if len(cells) > 1:
        notes.append(f"gto show's summary gives the latest version as {cells[1]!r} (it is {version_of(n)})")
    return notes


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def bench_size(n: int, repeat: int, env: dict, keep: bool) -> dict:
    with benchkit.scratch(f"bench-history-{n}-", keep=keep) as root:
        started = time.perf_counter()
        old, new = build(root, n, env)
        print(f"\n== {n} releases of '{MODEL}' (built in {time.perf_counter() - started:.1f} s at {root}) ==")

        cache = root / ".dvc" / "tmp" / "gitmodel"
        shutil.rmtree(cache, ignore_errors=True)
        cold = timed(["git", "model", "log", MODEL], root, env, 1)[0]
        for note in sanity(root, env, n):
            print("  " + note)

        floor_log = (f"git for-each-ref --format='%(refname:strip=2)%00%(objectname)%00%(*objectname)%00"
                     f"%(creatordate:unix)%00%(contents)' refs/tags >/dev/null && "
                     f"git for-each-ref --format='%(refname):{METRICS}' 'refs/tags/{MODEL}@*' "
                     f"| git cat-file --batch >/dev/null")
        floor_diff = f"printf '%s\\n' '{old}:{METRICS}' '{new}:{METRICS}' | git cat-file --batch >/dev/null"
        pairs = [
            ("log", ["git", "model", "log"], ["gto", "show"], "gto show", floor_log),
            ("log --json", ["git", "model", "log", "--json"], ["gto", "history", "--json"],
             "gto history --json", floor_log),
        ]
        diff_ok = has_diff_command(root, env)
        pairs.append(("diff A B", ["git", "model", "diff", old, new] if diff_ok else None,
                      ["dvc", "metrics", "diff", old, new], "dvc metrics diff", floor_diff))
        results = {"n": n, "cold_log": cold}
        print(f"  first `git model log` (validates {n} metrics blobs once): {cold * 1000:.0f} ms\n")
        print(f"  {'ours':<22} {'median':>9}   {'theirs':<20} {'median':>9}   {'ratio':>7}   {'git floor':>9}")
        for label, ours, theirs, theirs_label, floor in pairs:
            t_ours = timed(ours, root, env, repeat) if ours else None
            t_theirs = timed(theirs, root, env, repeat)
            t_floor = timed(floor, root, env, repeat)
            m_ours = median_ms(t_ours) if t_ours else None
            m_theirs = median_ms(t_theirs)
            m_floor = median_ms(t_floor)
            ratio = f"{m_theirs / m_ours:6.1f}x" if m_ours else "    n/a"
            shown = f"{m_ours:7.0f} ms" if m_ours else "      n/a"
            print(f"  git model {label:<12} {shown}   {theirs_label:<20} {m_theirs:7.0f} ms   {ratio}   "
                  f"{m_floor:6.0f} ms")
            results[label] = {"ours": m_ours, "theirs": m_theirs, "floor": m_floor}
        if old and new:
            print(f"\n  diff between {old} and {new}"
                  + ("" if diff_ok else "  (`git model diff` is not available in this build: n/a)"))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, nargs="+", default=[1000], metavar="N",
                        help="releases in the repository; several sizes show how each command grows (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, metavar="K", help="repetitions per command (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = parser.parse_args()
    for tool in ("git", "git-model", "gto", "dvc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (activate the project's venv)")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "COLUMNS": "200"}
    # Python keeps compiled bytecode as an installed package has it (pip compiles at install): a machine
    # that sets PYTHONDONTWRITEBYTECODE would time every run's compiling of git-model, gto and dvc alike
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"bench_history: {args.repeat} repetitions per command, medians; "
          f"{os.cpu_count()} cores; python {sys.version.split()[0]}")
    runs = [bench_size(n, args.repeat, env, args.keep) for n in args.releases]
    if len(runs) > 1:
        a, b = runs[0], runs[-1]
        span = b["n"] - a["n"]
        print(f"\n== growth from {a['n']} to {b['n']} releases, per release ==")
        for label in ("log", "log --json", "diff A B"):
            def slope(key):
                x, y = a[label][key], b[label][key]
                return f"{(y - x) / span:.3f} ms" if x is not None and y is not None else "n/a"
            print(f"  {label:<11} git model {slope('ours'):>10}   theirs {slope('theirs'):>10}   "
                  f"git floor {slope('floor'):>10}")


if __name__ == "__main__":
    main()
