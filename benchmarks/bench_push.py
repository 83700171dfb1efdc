"""`git model push` against `git push --tags` + `dvc push -T`, on a registry of many big releases.

    python benchmarks/bench_push.py [--releases 20] [--size-mib 64] [--runs 3] [--dir DIR] [--keep]

Builds a git-model repository whose model ``big`` has ``--releases`` releases
of ``--size-mib`` each: one commit per release, the checkpoint a real demo GGUF
file followed by seeded random bytes (so every release has its own md5),
tracked with ``dvc add`` and tagged ``big@v1.0.N`` with ``git tag -a`` (GTO's
format). Each round starts from an empty DVC folder remote and an empty bare
git repository for each contender, and times side by side:

* ``ours, first``: ``git model push`` (the objects of every release to the DVC
  remote, then the check that each one is there, then the tags to git);
* ``dvc, first``: ``git push --tags origin`` then ``dvc push -T`` (DVC's push
  of the objects of every tag), what users would otherwise run -- but DVC
  3.67 pushes the workspace's objects only (treeverse/dvc#10617; ``-A`` too),
  so this contender does a fraction of the work, and the script says how much;
* ``dvc per tag, first``: ``git push --tags origin`` then, for each release,
  ``git checkout TAG`` and ``dvc push``: what pushes every release with DVC
  alone today;
* ``..., again``: the same commands once more, when everything is already on
  the remotes (the no-op push).

Between timed runs the page cache is written back (``sync``, untimed). It prints
medians of wall time (and of CPU time, user + sys of the processes, which other
jobs on a shared machine inflate less) and the ratios against the goals: the first push within 1.2x of DVC's
time, and the no-op push under 1 s. It also checks that both remotes end up
holding every release's object (DVC's ``dvc push -T`` too, which says whether
the figure compares like with like). Temp data: about (2 + 2 x 1) x releases x
size (the cache, the workspace copy, two remotes); removed unless --keep.
This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchkit

MODEL = "big"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str, check: bool = True) -> str:
    return benchkit.sh(cwd, *cmd, env=ENV, check=check)


CPU: dict[str, list[float]] = {}


def timed(cwd: Path, *cmds: list[str], label: str = "") -> float:
    """Wall seconds of ``cmds``; their CPU seconds (user + sys of the child processes, which a machine
    shared with other jobs inflates less than wall time) go to ``CPU[label]``."""
    subprocess.run(["sync"], check=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for cmd in cmds:
        sh(cwd, *cmd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def build(repo: Path, releases: int, size_mib: int) -> list[str]:
    from gitmodel.demo import build as build_demo

    demo = repo.parent / "demo"
    build_demo(demo)
    base = (demo / "sentiment-v2.gguf").read_bytes()
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    sh(repo, str(BIN / "git-model"), "init")
    sh(repo, "git", "commit", "-q", "-m", "git model init")
    path = repo / "models" / f"{MODEL}.gguf"
    for n in range(releases):
        rng = random.Random(n)
        with open(path, "wb") as f:
            f.write(base)
            f.writelines(rng.randbytes(1 << 20) for _ in range(size_mib))
        sh(repo, str(BIN / "dvc"), "add", "-q", str(path))
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-q", "-m", f"{MODEL} {n}")
        sh(repo, "git", "tag", "-a", f"{MODEL}@v1.0.{n}", "-m", f"Registering artifact {MODEL} version v1.0.{n}")
    return [f"{MODEL}@v1.0.{n}" for n in range(releases)]


def objects(remote: Path) -> int:
    base = remote / "files" / "md5"
    return sum(1 for d in base.iterdir() for _ in d.iterdir()) if base.is_dir() else 0


def fresh_remotes(work: Path, repo: Path, who: str) -> Path:
    """An empty DVC folder remote and bare git repository for one contender, set in .dvc/config.local."""
    storage, origin = work / f"{who}-storage", work / f"{who}-origin.git"
    for old in (storage, origin):
        shutil.rmtree(old, ignore_errors=True)
    storage.mkdir()
    sh(work, "git", "init", "-q", "--bare", str(origin))
    sh(repo, "git", "remote", "set-url", "origin", str(origin))
    sh(repo, str(BIN / "dvc"), "remote", "modify", "--local", "storage", "url", str(storage))
    return storage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with benchkit.scratch("bench-push-", args.dir, args.keep) as work:
        repo = work / "repo"
        print(f"building {args.releases} releases of {args.size_mib} MiB in {work} ...", flush=True)
        tags = build(repo, args.releases, args.size_mib)
        branch = sh(repo, "git", "rev-parse", "--abbrev-ref", "HEAD").strip()
        sh(repo, "git", "remote", "add", "origin", str(work / "none.git"))
        sh(repo, str(BIN / "dvc"), "remote", "add", "-d", "storage", str(work / "none"))
        gm = [str(BIN / "git-model"), "push"]
        tag_push = ["git", "push", "-q", "--tags", "origin"]
        per_tag = [tag_push]
        for tag in tags:
            per_tag += [["git", "checkout", "-q", tag], [str(BIN / "dvc"), "push", "-q"]]
        per_tag.append(["git", "checkout", "-q", branch])
        contenders = {"ours": [gm], "dvc": [tag_push, [str(BIN / "dvc"), "push", "-q", "-T"]],
                      "dvc per tag": per_tag}
        times: dict[str, list[float]] = {f"{who}, {when}": [] for when in ("first", "again") for who in contenders}
        held = {}
        for run in range(args.runs):
            # rotate who goes first, so that a noisy machine slows them alike
            order = list(contenders)[run % 3:] + list(contenders)[:run % 3]
            for who in order:
                storage = fresh_remotes(work, repo, who.replace(" ", "-"))
                cmds = contenders[who]
                times[f"{who}, first"].append(timed(repo, *cmds, label=f"{who}, first"))
                times[f"{who}, again"].append(timed(repo, *cmds, label=f"{who}, again"))
                held[who] = objects(storage)
            print(f"  round {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        total = args.releases * args.size_mib
        print(f"\n{args.releases} releases x {args.size_mib} MiB = {total} MiB, local-folder remote, "
              f"median of {args.runs}:")
        for k, v in med.items():
            print(f"  {k:20} {v:7.2f} s   (CPU {statistics.median(CPU[k]):6.2f} s)")
        print("  objects on the remote after: " + ", ".join(f"{who} {held[who]}" for who in contenders)
              + f" (of {args.releases})")
        for who in ("dvc", "dvc per tag"):
            first = med["ours, first"] / med[f"{who}, first"]
            print(f"first push: ours / {who} = {first:.2f}x (goal <= 1.2x): {'ok' if first <= 1.2 else 'MISSED'}"
                  f"{'' if held[who] == args.releases else f' ({who} pushed {held[who]} of {args.releases})'}")
        print(f"no-op push: ours {med['ours, again']:.2f} s (goal < 1 s): "
              f"{'ok' if med['ours, again'] < 1 else 'MISSED'}; dvc {med['dvc, again']:.2f} s, "
              f"dvc per tag {med['dvc per tag, again']:.2f} s")


if __name__ == "__main__":
    main()
