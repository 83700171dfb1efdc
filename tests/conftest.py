"""Fixtures shared by every test: an isolated HOME and git identity, real
git + DVC repositories in temp folders, and the demo checkpoints built once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent

# A shell starts a background job with Ctrl-C ignored, and Python then leaves it ignored: the tests of
# what Ctrl-C does (in this process and in the commands it starts) need it as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _isolate_env(mp: pytest.MonkeyPatch, home: Path, identity: tuple[str, str] | None = None) -> None:
    """A fresh HOME, git identity and DVC site cache (gto's `isolate`), on a MonkeyPatch.

    ``identity`` (name, email) makes author and committer one person, as in the
    session templates, whose tags tests read back."""
    mp.setenv("HOME", str(home))
    mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    mp.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    mp.setenv("DVC_SITE_CACHE_DIR", str(home / "dvc-site-cache"))
    mp.setenv("DVC_NO_ANALYTICS", "1")
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
    }.items():
        mp.setenv(key, value)
    if identity:
        for role in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{role}_NAME", identity[0])
            mp.setenv(f"GIT_{role}_EMAIL", identity[1])
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = Test\n\temail = t@example.com\n")
    # the venv's scripts (git-model, dvc) must be found by git and by dvc repro
    mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(autouse=True)
def isolate(tmp_path_factory, monkeypatch):
    """Every test runs isolated."""
    _isolate_env(monkeypatch, tmp_path_factory.mktemp("home"))


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


def _make_registry(path: Path, demo: Path) -> Path:
    """A git-model repository with the demo checkpoints v1/v2/v3 tracked as three
    models and the demo eval set tracked, all committed."""
    import shutil

    from gitmodel import project, tracking

    path.mkdir()
    git(path, "init", "-q")
    project.init(path)
    for version in ("v1", "v2", "v3"):
        shutil.copy(demo / f"sentiment-{version}.gguf", path / "models" / f"sentiment-{version}.gguf")
        tracking.add_model(path / "models" / f"sentiment-{version}.gguf", start=path)
    shutil.copy(demo / "sentiment.jsonl", path / "evalsets" / "sentiment.jsonl")
    tracking.add_evalset(path / "evalsets" / "sentiment.jsonl", start=path)
    git(path, "commit", "-q", "-m", "track demo models and eval set")
    return path


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory, demo_dir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _isolate_env(mp, tmp_path_factory.mktemp("template-home"), identity=("Test", "t@example.com"))
        return _make_registry(tmp_path_factory.mktemp("template") / "repo", demo_dir)


@pytest.fixture
def registry(registry_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the demo registry (v1, v2, v3 and the eval set), as the current directory."""
    import shutil

    repo = tmp_path / "registry"
    shutil.copytree(registry_template, repo, symlinks=True)
    monkeypatch.chdir(repo)
    return repo


# The versions the `released` repository gives the demo v1, v2 and v3 weights of ONE model:
# v1.10.0 sorts above v1.2.0 by SemVer and below it as text, so ordering bugs show.
RELEASES = ("v1.0.0", "v1.2.0", "v1.10.0")


def _make_released(path: Path, demo: Path) -> Path:
    """ONE model `sentiment` with the demo v1, then v2, then v3 weights, each tracked with
    `git model add`, evaluated with `git model eval`, committed and released with `git model release`."""
    import shutil

    from gitmodel.cli import cli

    def gm(*args: str) -> None:
        result = CliRunner().invoke(cli, list(args), prog_name="git model")
        assert result.exit_code == 0, (args, result.output, result.stderr)

    path.mkdir()
    git(path, "init", "-q")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        gm("init")
        git(path, "commit", "-q", "-m", "git model init")
        shutil.copy(demo / "sentiment.jsonl", path / "evalsets" / "sentiment.jsonl")
        gm("evalset", "add", "evalsets/sentiment.jsonl")
        for i, (weights, version) in enumerate(zip(("v1", "v2", "v3"), RELEASES)):
            shutil.copy(demo / f"sentiment-{weights}.gguf", path / "models" / "sentiment.gguf")
            gm("add", "models/sentiment.gguf", "--base-model", "demo-base", "--param", f"epochs={i + 1}",
               "--training-duration", f"{i + 1}h")
            gm("eval", "sentiment", "--evalset", "sentiment")
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", f"sentiment with the demo {weights} weights")
            gm("release", "sentiment", version, "-m", f"demo {weights} weights")
    return path


@pytest.fixture(scope="session")
def released_template(tmp_path_factory, demo_dir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _isolate_env(mp, tmp_path_factory.mktemp("released-home"), identity=("Test", "t@example.com"))
        return _make_released(tmp_path_factory.mktemp("released") / "repo", demo_dir)


@pytest.fixture
def released(released_template, tmp_path, monkeypatch) -> Path:
    """A private copy of a repository where one model, `sentiment`, was released three times
    (RELEASES: demo v1, v2, v3 weights, each with real metrics), as the current directory."""
    import shutil

    repo = tmp_path / "released"
    shutil.copytree(released_template, repo, symlinks=True)
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def in_prod(released) -> Path:
    """`released`, with prod assigned to each release in turn (v1.0.0 -> v1.2.0 -> v1.10.0); the workspace
    holds v1.10.0."""
    import time

    from tests.func.stagekit import record_prod

    start = int(time.time()) - 100
    for counter, version in enumerate(RELEASES, start=1):
        record_prod(released, version, counter, when=start + counter)
    return released


# Every test on the demo checkpoints waits for the session fixtures that build them (and run llama.cpp
# on them): slow whatever its own body does, so `make test-fast` (-m "not slow") leaves it out.
SLOW_FIXTURES = {"demo_dir"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
