"""gitrepo: parsing git's own output."""
from __future__ import annotations

from gitmodel import gitrepo
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
    tags = {t["name"]: t for t in gitrepo.list_tags(git_repo)}
    assert tags["inner"]["commit"] == tags["outer"]["commit"] == head
    assert tags["outer"]["message"] == "outer"
