"""`git model rollback` against the ways users would otherwise switch a big checkpoint back.

    python benchmarks/bench_rollback.py [--size-mib 1024] [--runs 5] [--dir DIR] [--keep]

Builds a git-model repository whose model ``big`` has two released versions of
``--size-mib`` each: a real demo GGUF checkpoint followed by seeded random bytes
(still a valid GGUF file, so ``git model add`` tracks it as users would; the
releases are GTO tags written with ``git tag -a``, prod v1 then v2). Then, for
every ``dvc config cache.type`` this file system supports (copy, hardlink,
symlink; reflink when a probe reflink works), it times side by side:

* ``ours, first``: ``git model rollback big`` right after ``dvc checkout
  --relink`` laid the workspace out, with no record of verified objects
  (``.dvc/tmp/gitmodel/hashes.json`` deleted): it pays the md5 pass over the
  object and the check that the workspace bytes are in the cache;
* ``ours``: the same once both objects are known good (median of --runs; each
  run rolls back, committing and tagging, so runs alternate v2 -> v1 -> v2);
* ``dvc``: the manual DVC way, ``git checkout <tag> -- big.gguf.dvc &&
  dvc checkout big.gguf.dvc`` (median, alternating the tags);
* ``cp``: plain ``cp`` of the cache object to a new file (median), and onto
  an existing copy (``cp over``: the old bytes are freed first, as a rollback
  must free the file it replaces; not atomic, for comparison only);
* ``md5``: one md5 pass over the checkpoint (``md5sum``).

Between timed runs the page cache is written back (``sync``, untimed), so that
one run's dirty pages do not slow the next; rounds interleave the contenders,
so that a noisy machine slows them alike. It prints the figures and the
ratios against its goals: with a link type, ``ours`` within 1.5x of
``dvc`` (and ``ours, first`` within 1.5x ``dvc`` + one md5 pass); with copy,
``ours`` within 1.3x of ``cp`` (and ``ours, first`` within 1.3x ``cp`` + one md5
pass). Temp data: the two cache objects, the workspace file and one transient
copy (or the cp target), about 4x --size-mib at the peak (5x free is required
before it starts); removed at the end unless --keep.
This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchkit

MODEL = "big"
DVC_FILE = f"models/{MODEL}.gguf.dvc"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def sh(cwd: Path, *cmd: str, check: bool = True) -> str:
    return benchkit.sh(cwd, *cmd, env=ENV, check=check)


# Seconds of rest after the sync. On the 2-core VM this was written on, a 1 GiB `cp` took 0.28-0.33 s
# after 0.3 s of rest and 1.2-1.4 s after 3-6 s (the same file, the page cache warm): longer rests made
# every figure noisier, so the runs stay close together.
SETTLE = 0.3


def timed(repo: Path, *cmds: list[str]) -> float:
    """Wall time of the commands run one after the other (as `a && b` would), after an untimed sync
    and a pause, so that the dirty pages and freed blocks of one run do not slow the next."""
    os.sync()
    time.sleep(SETTLE)
    start = time.perf_counter()
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=ENV, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


def write_checkpoint(demo: Path, dest: Path, size: int, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    if dest.exists():
        dest.unlink()       # may be a read-only hardlink into the cache
    with open(dest, "wb") as f:
        f.write(demo.read_bytes())
        left = size - demo.stat().st_size
        while left > 0:
            n = min(left, 64 << 20)
            f.write(rng.bytes(n))
            left -= n


def reflink_supported(folder: Path) -> bool:
    probe = folder / "reflink-probe"
    probe.write_bytes(b"x")
    ok = subprocess.run(["cp", "--reflink=always", str(probe), str(probe) + ".2"], capture_output=True,
                        check=False).returncode == 0
    probe.unlink()
    Path(str(probe) + ".2").unlink(missing_ok=True)
    return ok


def build(repo: Path, size: int, bin_dir: Path) -> dict[str, str]:
    from gitmodel.demo import build as build_demo

    demo = build_demo(repo.parent / "demo")
    repo.mkdir()
    gm = str(bin_dir / "git-model")
    sh(repo, "git", "init", "-q")
    sh(repo, gm, "init")
    sh(repo, "git", "commit", "-q", "-m", "git model init")
    sh(repo, str(bin_dir / "dvc"), "config", "--local", "cache.type", "hardlink")   # build without extra copies
    md5s = {}
    start = int(time.time()) - 100
    for i, (version, weights) in enumerate((("v1.0.0", "sentiment-v1"), ("v2.0.0", "sentiment-v2"))):
        write_checkpoint(demo[weights], repo / f"models/{MODEL}.gguf", size, seed=i)
        sh(repo, gm, "add", f"models/{MODEL}.gguf")
        sh(repo, "git", "commit", "-q", "-m", f"{MODEL} {version}")
        env = {**ENV, "GIT_COMMITTER_DATE": f"{start + 2 * i} +0000"}
        subprocess.run(["git", "tag", "-a", f"{MODEL}@{version}", "-m",
                        f"Registering artifact {MODEL} version {version}"], cwd=repo, check=True, env=env)
        env = {**ENV, "GIT_COMMITTER_DATE": f"{start + 2 * i + 1} +0000"}
        subprocess.run(["git", "tag", "-a", f"{MODEL}#prod#{i + 1}", "-m",
                        f"Assigning stage prod to artifact {MODEL} version {version}", f"{MODEL}@{version}^{{commit}}"],
                       cwd=repo, check=True, env=env)
        md5s[version] = sh(repo, "git", "show", f"HEAD:{DVC_FILE}").split("md5: ")[1].split()[0]
    shutil.rmtree(repo.parent / "demo")
    return md5s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each checkpoint version")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (the median is shown)")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the repository afterwards")
    args = parser.parse_args()
    size = args.size_mib << 20
    bin_dir = Path(sys.executable).parent
    dvc, gm = str(bin_dir / "dvc"), str(bin_dir / "git-model")
    with benchkit.scratch("bench-rollback-", args.dir, args.keep) as work:
        free = shutil.disk_usage(work).free
        if free < 5 * size:
            raise SystemExit(f"not enough free space in {work}: {free >> 20} MiB, need {5 * size >> 20} MiB")
        repo = work / "repo"
        print(f"building two {args.size_mib} MiB versions in {repo} ...", flush=True)
        md5s = build(repo, size, bin_dir)
        obj = repo / ".dvc/cache/files/md5" / md5s["v1.0.0"][:2] / md5s["v1.0.0"][2:]
        md5_pass = statistics.median(timed(repo, ["md5sum", str(obj)]) for _ in range(2))
        cp_target = work / "cp-target"

        overs = []

        def cp_once() -> float:
            t = timed(repo, ["cp", str(obj), str(cp_target)])
            # cp onto an existing 1 GiB copy (as onto the model): the old bytes are freed first, as a
            # rollback must free the file it replaces (which plain cp to a new name never pays)
            overs.append(timed(repo, ["cp", str(obj), str(cp_target)]))
            cp_target.unlink()
            return t

        def relaid() -> None:
            """The workspace as `dvc checkout` lays it out, and no record of verified objects."""
            sh(repo, dvc, "checkout", "--relink", DVC_FILE)
            (repo / ".dvc/tmp/gitmodel/hashes.json").unlink(missing_ok=True)

        # cp on its own first, before any rollback or checkout has run: its best case, the strict baseline
        quiet_cp = statistics.median(cp_once() for _ in range(args.runs))
        types = ["copy", "hardlink", "symlink"] + (["reflink"] if reflink_supported(repo / "models") else [])
        rows = []
        cps = []
        overs.clear()
        for cache_type in types:
            sh(repo, dvc, "config", "--local", "cache.type", cache_type)
            firsts = []
            for _ in range(max(1, args.runs // 2)):
                relaid()
                firsts.append(timed(repo, [gm, "rollback", MODEL]))
            timed(repo, [gm, "rollback", MODEL])        # untimed: now both objects are known good
            ours, dvc_runs = [], []
            # rounds interleave the contenders, so that a noisy machine slows them alike
            for i in range(args.runs):
                ours.append(timed(repo, [gm, "rollback", MODEL]))
                tag = f"{MODEL}@{('v1.0.0', 'v2.0.0')[i % 2]}"
                dvc_runs.append(timed(repo, ["git", "checkout", tag, "--", DVC_FILE], [dvc, "checkout", DVC_FILE]))
                cps.append(cp_once())
            sh(repo, "git", "checkout", "HEAD", "--", DVC_FILE)
            sh(repo, dvc, "checkout", DVC_FILE)
            rows.append((cache_type, statistics.median(firsts), statistics.median(ours), statistics.median(dvc_runs)))
            print(f"  {cache_type}: done", flush=True)
        cp = statistics.median(cps)

        cp_over = statistics.median(overs)
        print(f"\n{args.size_mib} MiB checkpoint, medians of {args.runs} runs (seconds): cp to a new file "
              f"{cp:.3f} in the rounds, {quiet_cp:.3f} alone before them; cp over an existing copy {cp_over:.3f}; "
              f"md5 pass {md5_pass:.3f}\n")
        print(f"{'cache.type':<10} {'ours,first':>10} {'ours':>7} {'dvc':>7} {'cp':>7}   ratios and goals")
        for cache_type, first, ours, dvc_switch in rows:
            if cache_type == "copy":
                goal = f"ours/cp {ours / cp:.2f}, against cp alone {ours / quiet_cp:.2f} (goal <= 1.3; " \
                       f"ours/cp-over {ours / cp_over:.2f}); first/(1.3 cp + md5) " \
                       f"{first / (1.3 * cp + md5_pass):.2f}, with cp alone " \
                       f"{first / (1.3 * quiet_cp + md5_pass):.2f} (goal <= 1)"
            else:
                goal = f"ours/dvc {ours / dvc_switch:.2f} (goal <= 1.5); first/(1.5 dvc + md5) " \
                       f"{first / (1.5 * dvc_switch + md5_pass):.2f} (goal <= 1)"
            print(f"{cache_type:<10} {first:>10.3f} {ours:>7.3f} {dvc_switch:>7.3f} {cp:>7.3f}   {goal}; "
                  f"ours/dvc {ours / dvc_switch:.2f}, ours/cp {ours / cp:.2f}")


if __name__ == "__main__":
    main()
