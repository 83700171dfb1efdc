"""All git access. Other modules never run git themselves.

GitPython is imported lazily (it costs ~0.1 s); hot read paths use plain
``git`` subprocesses with argument lists (never a shell) and ``--end-of-options``
before anything a user typed.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from gitmodel.errors import GitError, NotAGitRepository


def run_git(root: Path | str | None, *args: str, input: bytes | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> bytes:
    cmd = ["git"]
    if root is not None:
        cmd += ["-C", str(root)]
    cmd += list(args)
    proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, **env} if env else None)
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
    items = iter(out.decode("utf-8", "surrogateescape").split("\0"))
    entries = []
    for item in items:
        if item:
            entries.append((item[:2], item[3:]))
            if item[0] in "RC":
                next(items, None)  # -z puts a rename's or copy's original path in a field of its own
    return entries


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


# ----------------------------------------------------------------------------- tags and objects, in bulk
# One `git for-each-ref` for every tag and one `git cat-file --batch` process
# for every blob: history commands cost two subprocesses, not one per release.

TAG_FORMAT = ("%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objectname)%00%(*objecttype)%00"
              "%(creatordate:unix)%00%(taggername)%00%(taggeremail)%00%(contents)%01")


def list_tags(root: Path) -> list[dict]:
    """Every tag: name, commit it points to, unix time, tagger, full message (annotated tags)."""
    out = run_git(root, "for-each-ref", "refs/tags", f"--format={TAG_FORMAT}")
    tags: list[dict] = []
    nested: list[int] = []
    for record in out.decode("utf-8", "surrogateescape").split("\x01"):
        record = record.lstrip("\n")
        if not record:
            continue
        name, kind, obj, peeled, peeled_kind, when, tagger, email, message = record.split("\0", 8)
        if peeled_kind == "tag":
            nested.append(len(tags))  # a tag of a tag: `*` peels one level only
        tags.append({
            "name": name,
            "annotated": kind == "tag",
            "commit": peeled if kind == "tag" else obj,
            "time": int(when) if when else 0,
            "tagger": f"{tagger} {email}".strip(),
            "message": message.rstrip("\n") if kind == "tag" else "",
        })
    for i in nested:  # rare: one rev-parse each is fine
        tags[i]["commit"] = resolve_commit(root, f"refs/tags/{tags[i]['name']}") or tags[i]["commit"]
    return tags


class ObjectReader:
    """Reads many git objects through one ``git cat-file --batch`` process."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read_many(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        """(type, content) for each ``<rev>:<path>`` or sha; None where it does not exist."""
        results: list[tuple[str, bytes] | None] = []
        # In chunks: git answers while we write, and a whole batch written at
        # once would fill both pipes (ours to git, git's to us) and deadlock.
        chunk: list[str] = []
        size = 0
        for spec in specs:
            chunk.append(spec)
            size += len(spec) + 1
            if size >= self.CHUNK_BYTES:
                results += self._read_chunk(chunk)
                chunk, size = [], 0
        return results + self._read_chunk(chunk)

    CHUNK_BYTES = 16 * 1024   # well under a pipe's buffer (64 KiB on Linux)

    def _read_chunk(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        if not specs:
            return []
        self.proc.stdin.write("".join(f"{s}\n" for s in specs).encode("utf-8", "surrogateescape"))
        self.proc.stdin.flush()
        out = self.proc.stdout
        results = []
        for _ in specs:
            header = out.readline().rstrip(b"\n").split(b" ")
            if len(header) < 3 or header[1] == b"missing" or header[-1] == b"missing":
                results.append(None)
                continue
            size = int(header[2])
            data = out.read(size)
            out.read(1)  # the newline after every object
            results.append((header[1].decode(), data))
        return results

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()

    def __enter__(self) -> "ObjectReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tree_entries(data: bytes) -> list[tuple[str, str, str]]:
    """(mode, name, sha) of a raw git tree object."""
    entries = []
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        mode = data[i:space].decode()
        name = data[space + 1:nul].decode("utf-8", "surrogateescape")
        sha = data[nul + 1:nul + 21].hex()
        entries.append((mode, name, sha))
        i = nul + 21
    return entries


def head_commit(root: Path) -> str | None:
    return resolve_commit(root, "HEAD")


def current_branch(root: Path) -> str | None:
    """The branch HEAD is on (unborn ones too), or None when HEAD is detached."""
    proc = subprocess.run(["git", "-C", str(root), "symbolic-ref", "--quiet", "--short", "HEAD"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.stdout.decode("utf-8", "surrogateescape").strip() or None if proc.returncode == 0 else None


def create_tag(root: Path, name: str, commit: str, message: str, cleanup: str | None = None,
               date: int | None = None) -> None:
    """An annotated tag; ``name`` must already have passed the tag grammar.

    ``cleanup="whitespace"`` keeps message lines that start with ``#`` (git's
    default cleanup drops them as comments). ``date`` (unix seconds) sets the
    tagger date, which GTO and ``dvc artifacts get`` order tags by.
    """
    options = [f"--cleanup={cleanup}"] if cleanup else []
    env = {"GIT_COMMITTER_DATE": f"{date} {time.strftime('%z')}"} if date is not None else None
    run_git(root, "tag", "-a", *options, "-F", "-", "--end-of-options", name, commit, input=message.encode("utf-8"),
            env=env)


def ref_kinds(root: Path, name: str) -> list[str]:
    """Which of branch / tag / remote branch ``name`` is (to refuse ambiguous names)."""
    wanted = {f"refs/heads/{name}": "branch", f"refs/tags/{name}": "tag", f"refs/remotes/{name}": "remote branch"}
    # one for-each-ref for the three; its patterns also match by prefix and glob, so keep exact names only
    out = run_git(root, "for-each-ref", "--format=%(refname)", *wanted, check=False)
    found = set(out.decode("utf-8", "surrogateescape").splitlines())
    return [kind for ref, kind in wanted.items() if ref in found]


def commit_info(root: Path, commits: list[str]) -> dict[str, dict]:
    """Author time and subject of many commits, in one ``git log --no-walk``."""
    if not commits:
        return {}
    out = run_git(root, "log", "--no-walk=unsorted", "--format=%H%x00%ct%x00%s", "--stdin",
                  input="\n".join(commits).encode())
    info = {}
    for line in out.decode("utf-8", "replace").splitlines():
        sha, when, subject = line.split("\0", 2)
        info[sha] = {"time": int(when), "subject": subject}
    return info


# ----------------------------------------------------------------------------- committing chosen paths

OPERATIONS = (("MERGE_HEAD", "a merge"), ("CHERRY_PICK_HEAD", "a cherry-pick"), ("REVERT_HEAD", "a revert"),
              ("rebase-merge", "a rebase"), ("rebase-apply", "a rebase or am"))
GIT_LOCKS = ("index.lock", "HEAD.lock")


def git_paths(root: Path, *names: str) -> list[Path]:
    """Paths inside the git directory (``index.lock``, ``MERGE_HEAD``...), right for worktrees too."""
    args = [a for name in names for a in ("--git-path", name)]
    out = run_git(root, "rev-parse", *args).decode("utf-8", "surrogateescape").splitlines()
    return [Path(line) if Path(line).is_absolute() else Path(root) / line for line in out]


def commit_obstacles(root: Path) -> tuple[str | None, list[Path]]:
    """(the git operation a commit would become part of, or None; git's lock files that exist
    and would make a commit fail) -- one git call."""
    paths = git_paths(root, *(name for name, _ in OPERATIONS), *GIT_LOCKS)
    busy = next((what for (_, what), path in zip(OPERATIONS, paths) if path.exists()), None)
    return busy, [path for path in paths[len(OPERATIONS):] if path.exists()]


def identity(root: Path) -> str:
    """``Name <email>`` of the committer git would record, or a GitError saying how to set it."""
    proc = subprocess.run(["git", "-C", str(root), "var", "GIT_COMMITTER_IDENT"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise GitError("git does not know who you are (no user.name / user.email)",
                       hint='set them: git config user.name "Your Name" && git config user.email you@example.com')
    ident = proc.stdout.decode("utf-8", "replace").strip()
    return ident.rsplit(">", 1)[0] + ">" if ">" in ident else ident


def commit_paths(root: Path, paths: list[str], message: str) -> str | None:
    """Commit exactly ``paths`` (relative to root) as they are in the work tree, new and deleted files
    included, leaving whatever else the user staged staged and uncommitted (``git commit --only``).
    Returns the new commit, or None when those paths already match HEAD."""
    paths = sorted(set(paths))
    if not paths:
        return None
    present = [p for p in paths if (Path(root) / p).exists()]
    if len(present) < len(paths):    # deleted files: only those git knows can be named
        out = run_git(root, "ls-files", "-z", "--with-tree=HEAD", "--", *paths)
        known = set(out.decode("utf-8", "surrogateescape").split("\0"))
        present = [p for p in paths if p in known or (Path(root) / p).exists()]
    if not present:
        return None
    run_git(root, "add", "-A", "--", *present)
    if not run_git(root, "diff", "--cached", "--name-only", "-z", "HEAD", "--", *present).strip(b"\0"):
        return None
    run_git(root, "commit", "--only", "--quiet", "-F", "-", "--", *present, input=message.encode("utf-8"))
    return head_commit(root)


def files_at(root: Path, rev: str, folder: str, reader: ObjectReader | None = None) -> dict[str, bytes]:
    """Every file under ``folder`` at ``rev`` (a commit), recursively: path relative to root -> bytes.
    Read through one ``git cat-file --batch`` (``reader``, when given, is reused)."""
    own = reader is None
    reader = reader or ObjectReader(root)
    found: dict[str, bytes] = {}
    try:
        pending = [folder.rstrip("/")]
        while pending:
            subfolders, blobs = [], []
            for path, obj in zip(pending, reader.read_many([f"{rev}:{p}" for p in pending])):
                if obj is None or obj[0] != "tree":
                    continue
                for mode, name, sha in tree_entries(obj[1]):
                    if mode == "40000":
                        subfolders.append(f"{path}/{name}")
                    elif mode.startswith("100"):
                        blobs.append((f"{path}/{name}", sha))
            for (path, _), obj in zip(blobs, reader.read_many([sha for _, sha in blobs])):
                if obj is not None:
                    found[path] = obj[1]
            pending = subfolders
    finally:
        if own:
            reader.close()
    return found
