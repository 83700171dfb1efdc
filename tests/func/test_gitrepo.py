"""gitrepo: parsing git's own output."""
from __future__ import annotations

from pathlib import Path

import pytest

from gitmodel import gitobjects, gitrepo
from gitmodel.errors import GitError, NotAGitRepository
from tests.conftest import git


def test_status_reads_a_rename_as_one_entry(git_repo):
    (git_repo / "notes.txt").write_text("x\n")
    git(git_repo, "add", "notes.txt")
    git(git_repo, "commit", "-q", "-m", "notes")
    git(git_repo, "mv", "notes.txt", "renamed.txt")
    (git_repo / "new.txt").write_text("y\n")
    assert gitrepo.status(git_repo) == [("R ", "renamed.txt"), ("??", "new.txt")]


def test_a_tag_of_a_tag_points_at_the_commit(git_repo):
    head = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "tag", "-a", "-m", "inner", "inner", head)
    git(git_repo, "tag", "-a", "-m", "outer", "outer", "inner")
    tags = {t["name"]: t for t in gitobjects.list_tags(git_repo)}
    assert tags["inner"]["commit"] == tags["outer"]["commit"] == head
    assert tags["outer"]["message"] == "outer"


# ----------------------------------------------------------------------------- writes, and git's refusals as our errors

def test_commit_paths_commits_only_the_named_paths(git_repo):
    (git_repo / "chosen.txt").write_text("a\n")
    (git_repo / "other.txt").write_text("b\n")
    git(git_repo, "add", "other.txt")
    commit = gitrepo.commit_paths(git_repo, ["chosen.txt"], "chosen only\n\n# a line that stays\n")
    assert commit == git(git_repo, "rev-parse", "HEAD").strip()
    assert git(git_repo, "show", "--name-only", "--format=", "HEAD").split() == ["chosen.txt"]
    assert "# a line that stays" in git(git_repo, "log", "-1", "--format=%B")
    assert gitrepo.status(git_repo) == [("A ", "other.txt")]    # still staged, not committed
    assert gitrepo.commit_paths(git_repo, ["chosen.txt"], "nothing new") is None


def test_a_commit_refused_by_a_hook_names_the_hook(git_repo):
    hook = git_repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'weights must not be committed' >&2\nexit 1\n")
    hook.chmod(0o755)
    (git_repo / "notes.txt").write_text("x\n")
    head = git(git_repo, "rev-parse", "HEAD")
    with pytest.raises(GitError) as caught:
        gitrepo.commit_paths(git_repo, ["notes.txt"], "notes")
    message = str(caught.value)
    assert message.startswith("git commit --only --quiet failed: weights must not be committed")
    assert f"(committing notes.txt; git ran the hook {hook})" in message
    assert caught.value.hint
    assert git(git_repo, "rev-parse", "HEAD") == head


def test_a_commit_refused_by_a_hook_leaves_the_index_as_it_was(git_repo):
    hook = git_repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    (git_repo / "notes.txt").write_text("x\n")
    (git_repo / "staged.txt").write_text("mine\n")
    git(git_repo, "add", "staged.txt")
    before = gitrepo.status(git_repo)
    with pytest.raises(GitError):
        gitrepo.commit_paths(git_repo, ["notes.txt"], "notes")
    assert gitrepo.status(git_repo) == before            # notes.txt not left staged
    assert ("??", "notes.txt") in before and ("A ", "staged.txt") in before


def test_a_commit_blocked_by_index_lock_names_the_lock(git_repo):
    lock = git_repo / ".git" / "index.lock"
    lock.write_text("")
    (git_repo / "notes.txt").write_text("x\n")
    with pytest.raises(GitError) as caught:
        gitrepo.commit_paths(git_repo, ["notes.txt"], "notes")
    assert str(caught.value).startswith("git add -A -- failed: Unable to create")
    assert str(caught.value).endswith("(committing notes.txt)")
    assert str(lock) in str(caught.value) and f"remove {lock}" in caught.value.hint
    assert "\n" not in str(caught.value)      # git's own advice is the hint, not repeated


def test_create_tag_writes_an_annotated_tag_with_the_date_and_hash_lines(git_repo):
    head = git(git_repo, "rev-parse", "HEAD").strip()
    gitrepo.create_tag(git_repo, "m@v1", head, "# title\nbody\n", cleanup="whitespace", date=1_700_000_000)
    [tag] = gitobjects.list_tags(git_repo)
    assert (tag["name"], tag["commit"], tag["annotated"], tag["time"]) == ("m@v1", head, True, 1_700_000_000)
    assert tag["message"] == "# title\nbody"


def test_a_tag_that_exists_gives_our_error_naming_it(git_repo):
    head = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "tag", "m@v1", head)
    with pytest.raises(GitError, match=r"^git tag -a m@v1 failed: tag 'm@v1' already exists \(creating tag m@v1 on [0-9a-f]{12}\)$"):
        gitrepo.create_tag(git_repo, "m@v1", head, "again")


def test_a_missing_identity_gives_our_error_with_the_way_out(git_repo, monkeypatch, tmp_path):
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    git(git_repo, "config", "user.useConfigOnly", "true")
    with pytest.raises(GitError, match="does not know who you are") as caught:
        gitrepo.identity(git_repo)
    assert "git config user.email" in caught.value.hint


def test_open_repo_finds_the_work_tree_above_and_refuses_outside_one(git_repo, tmp_path):
    (git_repo / "sub").mkdir()
    assert Path(gitrepo.open_repo(git_repo / "sub").working_tree_dir) == git_repo
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(NotAGitRepository):
        gitrepo.open_repo(outside)
