"""Rollback killed with SIGKILL at random moments, 30 times (deterministic seed).

Each trial starts a real `git model rollback` process, waits until it holds the repository lock (its
work begins there), sleeps a random part of the measured length of that work and kills it. Afterwards
the model path must hold exactly the old or exactly the new bytes -- never a partial file, never
nothing -- and running the rollback again must complete it: workspace, HEAD and prod agree, git's
status is clean and no temporary file is left. Every sixth trial kills the whole process group (the
git children too, as a terminal or an OOM killer would), which can leave git's own index.lock behind:
the rollback must then say what to do, and doing it must work.

The model is the demo checkpoint followed by 24 MiB of seeded bytes (still valid GGUF), so copying
it takes long enough for kills to land inside the copy.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import git
from tests.func.stagekit import (
    MODEL,
    MODEL_PATH,
    consistent,
    copy_demo,
    gm_ok,
    md5,
    record_prod,
    release_md5,
    run,
    tags,
    tool,
)

TRIALS = 30
SEED = 20240605
CACHE_TYPES = ("copy", "copy", "hardlink", "symlink")   # mostly copy: the long window


@pytest.fixture
def big_history(gm_repo, demo_dir) -> Path:
    repo = gm_repo
    (repo / "evalsets/sentiment.jsonl").write_bytes((demo_dir / "sentiment.jsonl").read_bytes())
    gm_ok("evalset", "add", "evalsets/sentiment.jsonl")
    for weights, version in (("v1", "v1.0.0"), ("v2", "v2.0.0")):
        copy_demo(demo_dir, weights, repo / MODEL_PATH, pad_mib=24)
        gm_ok("add", MODEL_PATH)
        gm_ok("eval", MODEL, "--evalset", "sentiment")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"sentiment {weights}")
        gm_ok("release", MODEL, version)
    start = int(time.time()) - 100
    record_prod(repo, "v1.0.0", 1, when=start)
    record_prod(repo, "v2.0.0", 2, when=start + 1)
    return repo


def _start(repo: Path, group: bool) -> subprocess.Popen:
    return subprocess.Popen([tool("git-model"), "rollback", MODEL], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=group)


def _wait_for_lock(repo: Path, proc: subprocess.Popen) -> float:
    """Block until ``proc`` holds the repository lock; returns the time it took it."""
    lock = repo / ".dvc/tmp/gitmodel/lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                return time.monotonic()
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            return time.monotonic()      # finished before we saw it
        time.sleep(0.0005)
    raise AssertionError("rollback never took the repository lock")


def _work_length(repo: Path) -> float:
    """How long a rollback holds the lock (the lock file is emptied when it lets go), measured on a real run."""
    proc = _start(repo, group=False)
    began = _wait_for_lock(repo, proc)
    lock = repo / ".dvc/tmp/gitmodel/lock"
    while proc.poll() is None and lock.read_text():
        time.sleep(0.0005)
    ended = time.monotonic()
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    return ended - began


def _outcome(repo: Path, before_head: str, before_tags: list, old: str, new: str) -> str:
    if len(tags(repo)) > len(before_tags):
        return "tagged"
    if git(repo, "rev-parse", "HEAD").strip() != before_head:
        return "committed"
    return "model replaced" if md5(repo / MODEL_PATH) == new else "untouched"


def test_rollback_killed_at_random_moments_leaves_old_or_new_bytes_and_completes(big_history):
    repo = big_history
    rng = random.Random(SEED)
    _work_length(repo)                   # v2 -> v1, complete; the first run also hashes both objects
    window = _work_length(repo)          # v1 -> v2: the length of the work the kills are spread over
    assert consistent(repo) == "v2.0.0"
    outcomes = Counter()
    lock_left = 0
    early, late = 0.0, window * 1.1      # the latest kill that found nothing done, the earliest that found all
    for trial in range(TRIALS):
        run(repo, tool("dvc"), "config", "--local", "cache.type", CACHE_TYPES[trial % len(CACHE_TYPES)])
        holder = consistent(repo)
        target = "v2.0.0" if holder == "v1.0.0" else "v1.0.0"
        old, new = release_md5(repo, holder), release_md5(repo, target)
        before_head, before_tags = git(repo, "rev-parse", "HEAD").strip(), tags(repo)
        group = trial % 6 == 5
        proc = _start(repo, group)
        _wait_for_lock(repo, proc)
        # every third kill anywhere in the work; the others where the state last changed between a kill
        # that found it untouched and one that found it done, so that on a loaded machine, where the
        # work's length varies from run to run, kills still land inside its short writing part
        low, high = (0.0, window * 1.1) if trial % 3 == 0 or not early < late else (early * 0.8, late * 1.2)
        pause = rng.uniform(low, high)
        time.sleep(pause)
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        time.sleep(0.05)                 # git children of a killed rollback finish on their own

        # the model path holds exactly the old or exactly the new bytes
        assert (repo / MODEL_PATH).is_file(), f"trial {trial}: the model is gone"
        assert md5(repo / MODEL_PATH) in (old, new), f"trial {trial}: partial model file"
        outcome = _outcome(repo, before_head, before_tags, old, new)
        outcomes[outcome] += 1
        if outcome == "untouched":
            early = max(early, pause)
        elif outcome == "tagged":
            late = min(late, pause)
        if not early < late:             # the work's length moved under load: start over
            early, late = 0.0, window * 1.1
        if outcome == "tagged":
            assert consistent(repo) == target
            continue

        # running it again completes it
        again = subprocess.run([tool("git-model"), "rollback", MODEL], cwd=repo, capture_output=True, text=True,
                               check=False)
        # a group kill inside `git commit` can leave any of git's locks: the index's, HEAD's, the branch's
        left = [p for p in (repo / ".git/index.lock", repo / ".git/HEAD.lock", repo / ".git/refs/heads/main.lock")
                if p.exists()]
        if again.returncode != 0 and left:
            lock_left += 1
            assert again.returncode == 3
            assert f" is locked: {left[0]} exists." in again.stderr
            assert f"  hint: if no git process is running, remove it (rm {left[0]}) and run the rollback again" \
                in again.stderr
            for lock in left:
                lock.unlink()            # what the message says to do
            again = subprocess.run([tool("git-model"), "rollback", MODEL], cwd=repo, capture_output=True, text=True,
                               check=False)
        assert again.returncode == 0, (trial, outcome, again.stdout, again.stderr)
        assert consistent(repo) == target, (trial, outcome)
        log = git(repo, "log", "-1", "--format=%s").strip()
        assert log == f"Roll back {MODEL} to {target} (was {holder})", (trial, outcome, log)
    print(f"\nkill outcomes over {TRIALS} trials: {dict(outcomes)}; git locks left by a group kill: {lock_left}")
    assert sum(outcomes.values()) == TRIALS
    # the kills landed at different points of the work, not all before or after it
    assert len(outcomes) >= 3, outcomes
