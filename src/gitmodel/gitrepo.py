"""All git access. Other modules never run git themselves.

GitPython is imported lazily (it costs ~0.1 s); hot read paths use plain
``git`` subprocesses with argument lists (never a shell) and ``--end-of-options``
before anything a user typed.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitmodel.errors import GitError, NotAGitRepository


def run_git(root: Path | str | None, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    cmd = ["git"]
    if root is not None:
        cmd += ["-C", str(root)]
    cmd += list(args)
    proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def find_root(start: Path | str | None = None) -> Path:
    """The top of the git work tree containing ``start`` (default: cwd)."""
    start = Path(start or os.getcwd())
    proc = subprocess.run(["git", "-C", str(start), "rev-parse", "--show-toplevel"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise NotAGitRepository(start)
    return Path(proc.stdout.decode().strip())


def stage(root: Path, paths) -> None:
    """``git add`` the given paths (relative to root or absolute inside it)."""
    paths = [str(p) for p in paths]
    if paths:
        run_git(root, "add", "--", *paths)


def status(root: Path, paths=()) -> list[tuple[str, str]]:
    """(XY status, path) pairs from ``git status --porcelain`` for the given paths."""
    out = run_git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *map(str, paths))
    entries = []
    for item in out.decode("utf-8", "surrogateescape").split("\0"):
        if item:
            entries.append((item[:2], item[3:]))
    return entries


def is_ignored(root: Path, path: Path | str) -> bool:
    proc = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--", str(path)])
    return proc.returncode == 0


def show_file(root: Path, rev: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``rev`` straight from git objects, or None when it is not there."""
    proc = subprocess.run(["git", "-C", str(root), "cat-file", "blob", f"{rev}:{path}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        return None
    return proc.stdout


def resolve_commit(root: Path, rev: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", "--end-of-options",
                           f"{rev}^{{commit}}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


WORKSPACE = "workspace"


def read_at(root: Path, rev: str | None, path: str) -> bytes | None:
    """``path`` (relative to root) in the workspace (rev None or "workspace") or at a git revision."""
    if rev in (None, WORKSPACE):
        p = Path(root) / path
        return p.read_bytes() if p.is_file() else None
    return show_file(root, rev, path)


def list_dir_at(root: Path, rev: str | None, folder: str) -> list[str]:
    """File names directly inside ``folder`` in the workspace or at a revision."""
    if rev in (None, WORKSPACE):
        p = Path(root) / folder
        return sorted(x.name for x in p.iterdir() if x.is_file()) if p.is_dir() else []
    proc = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", "-z", f"{rev}:{folder}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        return []
    return sorted(n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n)
