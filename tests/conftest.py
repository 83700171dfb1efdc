"""Fixtures shared by every test: an isolated HOME and git identity, real
git + DVC repositories in temp folders, and the demo checkpoints built once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolate(tmp_path_factory, monkeypatch):
    """A fresh HOME, git identity and DVC site cache for every test (gto's `isolate`)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(home / "dvc-site-cache"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
    }.items():
        monkeypatch.setenv(key, value)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = Test\n\temail = t@example.com\n")
    # the venv's scripts (git-model, dvc) must be found by git and by dvc repro
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_repo(tmp_path, monkeypatch) -> Path:
    """An empty git repository with one commit, as the current directory."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("# my models\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def gm_repo(git_repo) -> Path:
    """A git repository after `git model init` and a commit."""
    from gitmodel import project

    project.init(git_repo)
    git(git_repo, "commit", "-q", "-m", "git model init")
    return git_repo


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo checkpoints and eval set, built once per test session."""
    from gitmodel.demo import build

    out = tmp_path_factory.mktemp("demo")
    build(out)
    return out


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def status_porcelain(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--untracked-files=all")


def snapshot_tree(repo: Path) -> dict[str, bytes]:
    """Every file's bytes outside .git and DVC's cache/tmp: proof that nothing changed."""
    files = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo).as_posix()
        if p.is_file() and not rel.startswith((".git/", ".dvc/cache/", ".dvc/tmp/")):
            files[rel] = p.read_bytes()
    return files
