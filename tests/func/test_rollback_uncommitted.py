"""A rollback never loses what git does not hold, and never commits on a detached HEAD.

Repository R: the `released` fixture (ONE model, `sentiment`: v1.0.0, v1.2.0, v1.10.0 = demo v1, v2, v3
weights) promoted with git-model as a team would: v1.0.0 -> prod, v1.2.0 -> prod, v1.10.0 -> canary 0.1.
A rollback then goes back to v1.0.0. A second eval set `small` is committed and evaluated (its results
are not committed), a README is written by hand in metrics/sentiment/, and an edit of the model's .dvc
file is staged: the rollback must refuse, name every one of them, and change nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, snapshot_tree
from tests.func.stagekit import MODEL, MODEL_PATH, consistent, gm, gm_ok, tags

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"
SMALL_RESULTS = [f"metrics/{MODEL}/small.json", f"metrics/{MODEL}/small.outputs.jsonl"]
README = f"metrics/{MODEL}/README.md"


@pytest.fixture
def r(released) -> Path:
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.1", "--accept-risk", "watched closely")
    return released


@pytest.fixture
def r_with_work(r) -> Path:
    """R plus the user's work that git does not hold yet."""
    lines = (r / "evalsets/sentiment.jsonl").read_text().splitlines()[:12]
    (r / "evalsets/small.jsonl").write_text("\n".join(lines) + "\n")
    gm_ok("evalset", "add", "evalsets/small.jsonl")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "a second eval set")
    gm_ok("eval", MODEL, "--evalset", "small")
    (r / README).write_text("# Notes on the sentiment results, by hand\n")
    dvc_file = r / f"{MODEL_PATH}.dvc"
    dvc_file.write_text(dvc_file.read_text() + "# reviewed by the fraud team\n")
    git(r, "add", f"{MODEL_PATH}.dvc")
    return r


def state(repo: Path) -> tuple:
    return (snapshot_tree(repo), tags(repo), git(repo, "rev-parse", "HEAD"),
            git(repo, "diff", "--cached"), git(repo, "status", "--porcelain", "--untracked-files=all"))


@pytest.mark.slow
@pytest.mark.parametrize("no_commit", [True, False], ids=["no-commit", "commit"])
def test_a_rollback_refuses_to_lose_untracked_results_a_readme_and_a_staged_edit(r_with_work, no_commit):
    repo = r_with_work
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert set(status) == {f"?? {p}" for p in SMALL_RESULTS + [README]} | {f"M  {MODEL_PATH}.dvc"}
    before = state(repo)
    result = gm("rollback", MODEL, *(["--no-commit"] if no_commit else []))
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        "Error: the rollback would overwrite or remove what git does not hold: "
        f"{README} (not committed), {SMALL_RESULTS[0]} (not committed), {SMALL_RESULTS[1]} (not committed), "
        f"{MODEL_PATH}.dvc (staged change); nothing was changed",
        "  hint: commit them, or set them aside (`git stash --include-untracked`), then run the rollback again",
    ]
    assert state(repo) == before


@pytest.mark.slow
def test_an_unstaged_edit_of_a_restored_metrics_file_is_refused_too(r):
    metrics = r / f"metrics/{MODEL}/sentiment.json"
    metrics.write_text(metrics.read_text() + "\n")    # still valid JSON, but not what HEAD holds
    before = state(r)
    result = gm("rollback", MODEL, "--no-commit")
    assert result.exit_code == 3
    assert f"metrics/{MODEL}/sentiment.json (uncommitted change); nothing was changed" in result.stderr
    assert state(r) == before


@pytest.mark.slow
def test_once_committed_the_rollback_restores_exactly_the_release_and_says_what_it_removed(r_with_work):
    repo = r_with_work
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "small results, notes, reviewed .dvc")
    result = gm_ok("rollback", MODEL)
    assert f"  removed:  {README}, {SMALL_RESULTS[0]}, {SMALL_RESULTS[1]} (committed at HEAD, not part of {V1})" \
        in result.stdout.splitlines()
    assert consistent(repo) == V1
    # what was removed is in git: the commit before the rollback holds it
    assert git(repo, "show", f"HEAD~1:{README}") == "# Notes on the sentiment results, by hand\n"


@pytest.mark.slow
def test_a_rollback_in_detached_head_refuses_to_commit_and_says_how(r):
    git(r, "checkout", "-q", "--detach")
    head = git(r, "rev-parse", "HEAD").strip()
    before = state(r)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: HEAD is detached (at {head[:7]}): the rollback commit would be on no branch, and easy to lose; "
        "nothing was changed",
        "  hint: switch to the branch to roll back on (`git switch BRANCH`), or pass --no-commit to restore the "
        "files without committing",
    ]
    assert state(r) == before
    # --no-commit writes no commit, so it is allowed
    assert gm_ok("rollback", MODEL, "--no-commit").stdout.startswith(f"Restored {MODEL} to {V1} (was {V2})")
