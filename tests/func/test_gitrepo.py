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
