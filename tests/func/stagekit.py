"""Helpers for the promote / rollback / status tests: real git, DVC, GTO and `git model` processes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gitmodel.cli import cli
from tests.conftest import git

MODEL = "sentiment"
MODEL_PATH = "models/sentiment.gguf"


def gm(*args: str):
    """`git model ...` in-process (click's CliRunner), stdout and stderr apart."""
    return CliRunner().invoke(cli, list(args), prog_name="git model")


def gm_ok(*args: str):
    result = gm(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def run(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=repo, capture_output=True, text=True, check=False,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if check:
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
    return proc


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def tracked_md5(repo: Path, rev: str = "HEAD", path: str = MODEL_PATH) -> str:
    """md5 of the model as DVC records it at a revision (.dvc file, else dvc.lock)."""
    from gitmodel import store

    text = subprocess.run(["git", "show", f"{rev}:{path}.dvc"], cwd=repo, capture_output=True, text=True, check=False)
    if text.returncode == 0:
        return store.parse_dvc_file(text.stdout, repo / f"{path}.dvc").md5
    lock = git(repo, "show", f"{rev}:dvc.lock")
    return store.parse_lock(lock, repo / "dvc.lock", path).md5


def release_md5(repo: Path, version: str, model: str = MODEL) -> str:
    return tracked_md5(repo, f"{model}@{version}", f"models/{model}.gguf")


def tags(repo: Path, pattern: str = "*") -> list[str]:
    return git(repo, "tag", "-l", pattern).split()


def tag_message(repo: Path, tag: str) -> str:
    return git(repo, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)")


def tag_commit(repo: Path, tag: str) -> str:
    return git(repo, "rev-parse", f"{tag}^{{commit}}").strip()


def record_prod(repo: Path, version: str, counter: int, model: str = MODEL, when: int | None = None) -> str:
    """A prod assignment written by hand, the way `gto assign` writes it (no git-model involved)."""
    name = f"{model}#prod#{counter}"
    env = {**os.environ}
    if when is not None:
        env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    subprocess.run(["git", "tag", "-a", name, "-m", f"Assigning stage prod to artifact {model} version {version}",
                    f"{model}@{version}^{{commit}}"], cwd=repo, check=True, capture_output=True, env=env)
    return name


def gto_stages(repo: Path, model: str = MODEL) -> dict:
    """What `gto show --json` says the stages of the model are."""
    proc = run(repo, tool("gto"), "show", "--json")
    return json.loads(proc.stdout)[model]["stage"]


def dvc_get_stage(repo: Path, stage: str, out: Path, model: str = MODEL) -> str:
    """md5 of what `dvc artifacts get . MODEL --stage STAGE` downloads."""
    if out.exists():
        out.unlink()
    run(repo, tool("dvc"), "artifacts", "get", ".", model, "--stage", stage, "-o", str(out))
    return md5(out)


def add_remote(repo: Path, name: str = "storage") -> Path:
    """A real local DVC remote (a folder), committed as the default, holding the objects of every release.

    `dvc push --all-tags` pushes only the workspace's objects with DVC 3.67
    (treeverse/dvc#10617), so each release is checked out and pushed in turn,
    through a remote in .dvc/config.local (which a checkout does not change).
    """
    remote = repo.parent / f"{repo.name}-dvc-remote"
    remote.mkdir(exist_ok=True)
    branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    run(repo, tool("dvc"), "remote", "add", "--local", "-d", name, str(remote))
    for tag in [t for t in tags(repo) if "@v" in t]:
        git(repo, "checkout", "-q", tag)
        run(repo, tool("dvc"), "push", "-q")
    git(repo, "checkout", "-q", branch)
    run(repo, tool("dvc"), "remote", "remove", "--local", name)
    run(repo, tool("dvc"), "remote", "add", "-d", name, str(remote))
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-q", "-m", "DVC remote")
    return remote


def consistent(repo: Path, model: str = MODEL) -> str:
    """Assert that workspace, HEAD and prod agree (the state a finished rollback leaves); returns the version."""
    from gitmodel import registry

    reg = registry.load(repo)
    holder = reg.holder(model, "prod")
    version = str(holder.version)
    path = f"models/{model}.gguf"
    assert md5(repo / path) == tracked_md5(repo, "HEAD", path) == release_md5(repo, version, model)
    head_metrics = git(repo, "ls-tree", "-r", "HEAD", "--", f"metrics/{model}/")
    release_metrics = git(repo, "ls-tree", "-r", f"{model}@{version}", "--", f"metrics/{model}/")
    assert head_metrics == release_metrics
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not stray_temps(repo)
    return version


def stray_temps(repo: Path) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in repo.rglob(".gitmodel-tmp-*")
                  if not p.relative_to(repo).as_posix().startswith(".git/"))


def copy_demo(demo_dir: Path, weights: str, dest: Path, pad_mib: int = 0, seed: int = 0) -> None:
    """A demo checkpoint, optionally with `pad_mib` MiB of seeded bytes after its tensors (still valid GGUF):
    big enough that copying it takes a while."""
    shutil.copy(demo_dir / f"sentiment-{weights}.gguf", dest)
    if pad_mib:
        import random

        rng = random.Random(f"{weights}-{seed}")
        with open(dest, "ab") as f:
            f.writelines(rng.randbytes(1 << 20) for _ in range(pad_mib))
