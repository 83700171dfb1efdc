"""All git access, with gitobjects.py (tags and blobs in bulk). Other modules never run git themselves.

Writes (index and commit, tags) and identity go through GitPython, whose
command errors become :class:`GitError` naming what failed. GitPython is
imported lazily, inside the functions that write: importing it costs ~0.1 s,
and the read paths (``log``, ``diff``, ``--help``) never load it. Those read
paths use plain ``git`` subprocesses with argument lists (never a shell) and
``--end-of-options`` before anything a user typed.
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
        raise git_error(list(args), proc.stderr)
    return proc.stdout


def git_error(args: list[str], stderr: bytes | str | None, doing: str | None = None) -> GitError:
    """Our error for a failed git command: the command, what git said, what we were doing, and a way out
    where one is known."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    said = (stderr or "").strip()
    if said.startswith("stderr: '"):      # GitPython quotes git's stderr as "stderr: '...'"
        said = said.removeprefix("stderr: '").removesuffix("'").strip()
    for prefix in ("error: ", "fatal: "):
        said = said.removeprefix(prefix)
    hint = None
    if ".lock" in said and "File exists" in said:
        lock = said.split("'")[1] if said.count("'") >= 2 else "the .lock file git names"
        hint = f"another git process may be running; if none is, remove {lock} and retry"
        said = said.splitlines()[0]     # git's advice that follows is the hint, said shorter
    command = " ".join(str(a) for a in args[:3] if not str(a).startswith("-m"))
    message = f"git {command} failed" + (f": {said}" if said else "") + (f" ({doing})" if doing else "")
    return GitError(message, hint=hint)


def open_repo(root: Path | str):
    """The GitPython ``Repo`` of the work tree at or above ``root``."""
    import git     # lazily: see the module docstring

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        raise NotAGitRepository(root) from None


def _command_failed(e, doing: str, args: list[str] | None = None) -> GitError:
    """A GitPython ``GitCommandError`` as our error (its ``command`` holds the arguments, ``stderr`` git's words)."""
    if args is None:
        args = [str(a) for a in (e.command if isinstance(e.command, (list, tuple)) else [e.command])]
        args = args[1:] if args and args[0].endswith("git") else args
    return git_error(args, e.stderr, doing)


def find_root(start: Path | str | None = None) -> Path:
    """The top of the git work tree containing ``start`` (default: cwd).

    A plain ``git rev-parse``, not ``open_repo``: every command starts here,
    ``log`` and ``diff`` included, and they must not pay GitPython's import."""
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
    import git     # lazily: see the module docstring

    options = {"cleanup": cleanup} if cleanup else {}
    if date is not None:
        options["env"] = {**os.environ, "GIT_COMMITTER_DATE": f"{date} {time.strftime('%z')}"}
    try:
        # GitPython puts "--" before the name and the commit
        open_repo(root).create_tag(name, ref=commit, message=message, a=True, **options)
    except git.exc.GitCommandError as e:
        raise _command_failed(e, f"creating tag {name} on {commit[:12]}", ["tag", "-a", name]) from None


def ref_kinds(root: Path, name: str) -> list[str]:
    """Which of branch / tag / remote branch ``name`` is (to refuse ambiguous names)."""
    wanted = {f"refs/heads/{name}": "branch", f"refs/tags/{name}": "tag", f"refs/remotes/{name}": "remote branch"}
    # one for-each-ref for the three; its patterns also match by prefix and glob, so keep exact names only
    out = run_git(root, "for-each-ref", "--format=%(refname)", *wanted, check=False)
    found = set(out.decode("utf-8", "surrogateescape").splitlines())
    return [kind for ref, kind in wanted.items() if ref in found]


def is_ancestor(root: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
    proc = subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", ancestor, descendant],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode not in (0, 1):
        raise git_error(["merge-base", "--is-ancestor", ancestor, descendant], proc.stderr)
    return proc.returncode == 0


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
COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg")


def git_paths(root: Path, *names: str) -> list[Path]:
    """Paths inside the git directory (``index.lock``, ``MERGE_HEAD``...), right for worktrees too."""
    args = [a for name in names for a in ("--git-path", name)]
    out = run_git(root, "rev-parse", *args).decode("utf-8", "surrogateescape").splitlines()
    return [Path(line) if Path(line).is_absolute() else Path(root) / line for line in out]


def commit_obstacles(root: Path, branch: str | None = None) -> tuple[str | None, list[Path]]:
    """(the git operation a commit would become part of, or None; git's lock files that exist
    and would make a commit fail: the index's, HEAD's and ``branch``'s ref) -- one git call."""
    locks = [*GIT_LOCKS, *([f"refs/heads/{branch}.lock"] if branch else [])]
    paths = git_paths(root, *(name for name, _ in OPERATIONS), *locks)
    busy = next((what for (_, what), path in zip(OPERATIONS, paths) if path.exists()), None)
    return busy, [path for path in paths[len(OPERATIONS):] if path.exists()]


def identity(root: Path) -> str:
    """``Name <email>`` of the committer git would record, or a GitError saying how to set it."""
    import git     # lazily: see the module docstring

    # ``git var``, not GitPython's ``Actor.committer``: that one invents
    # user@hostname where git would refuse to commit.
    try:
        ident = open_repo(root).git.var("GIT_COMMITTER_IDENT").strip()
    except git.exc.GitCommandError:
        raise GitError("git does not know who you are (no user.name / user.email)",
                       hint='set them: git config user.name "Your Name" && git config user.email you@example.com') \
            from None
    return ident.rsplit(">", 1)[0] + ">" if ">" in ident else ident


def commit_paths(root: Path, paths: list[str], message: str) -> str | None:
    """Commit exactly ``paths`` (relative to root) as they are in the work tree, new and deleted files
    included, leaving whatever else the user staged staged and uncommitted (``git commit --only``).
    Returns the new commit, or None when those paths already match HEAD."""
    paths = sorted(set(paths))
    if not paths:
        return None
    import git     # lazily: see the module docstring

    repo = open_repo(root)
    present = [p for p in paths if (Path(root) / p).exists()]
    added = False
    # git's own add and commit (through GitPython's command wrapper), not
    # ``repo.index``: that writes the index and the commit itself, skipping
    # the user's hooks, clean/smudge filters and ``--only``'s keeping of what
    # else is staged.
    try:
        if len(present) < len(paths):    # deleted files: only those git knows can be named
            known = set(repo.git.ls_files("-z", "--with-tree=HEAD", "--", *paths).split("\0"))
            present = [p for p in paths if p in known or (Path(root) / p).exists()]
        if not present:
            return None
        # the index entries of these paths as they are, so that a refused commit (a hook) puts them back
        before = repo.git.ls_files("-z", "--stage", "--", *present)
        repo.git.add("-A", "--", *present)
        added = True
        if not repo.git.diff("--cached", "--name-only", "-z", "HEAD", "--", *present).strip("\0"):
            return None
        repo.git.commit("--only", "--quiet", f"--message={message}", "--", *present)
    except git.exc.GitCommandError as e:
        if added:
            _restore_index(root, present, before)
        failed = _command_failed(e, f"committing {', '.join(present)}")
        hooks = [p for p in git_paths(root, *(f"hooks/{h}" for h in COMMIT_HOOKS)) if os.access(p, os.X_OK)]
        if e.command and "commit" in map(str, e.command) and hooks:
            failed.message = failed.message.removesuffix(")") + \
                f"; git ran the hook{'s' if len(hooks) > 1 else ''} {', '.join(map(str, hooks))})"
            failed.args = (failed.message,)
            failed.hint = failed.hint or "fix what the hook reports, then run the command again"
        raise failed from None
    return repo.head.commit.hexsha


def _restore_index(root: Path, paths: list[str], listing: str) -> None:
    """Put the index entries of ``paths`` back as ``git ls-files --stage -z`` listed them: a path that
    was not in the index leaves it (mode 0 removes an entry)."""
    entries = {}
    for record in filter(None, listing.split("\0")):
        info, path = record.split("\t", 1)
        entries[path] = info
    lines = [f"{entries[p]}\t{p}" if p in entries else f"0 {'0' * 40}\t{p}" for p in paths]
    # the commit's failure is the one to report: if this fails too, the index is as git left it
    run_git(root, "update-index", "--index-info", input=("\n".join(lines) + "\n").encode("utf-8"), check=False)


# ----------------------------------------------------------------------------- tags on a git remote
# Never forced: a tag that exists on the other side with another target is reported, not replaced.

_NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0"}    # a remote asking for a password fails instead of hanging


def remote_names(root: Path) -> list[str]:
    return run_git(root, "remote").decode("utf-8", "surrogateescape").split()


def tag_objects(root: Path) -> dict[str, str]:
    """Every local tag -> the object its ref names (the tag object of an annotated tag)."""
    out = run_git(root, "for-each-ref", "refs/tags", "--format=%(objectname) %(refname:strip=2)")
    return dict(reversed(line.split(" ", 1)) for line in out.decode("utf-8", "surrogateescape").splitlines())


def remote_tags(root: Path, remote: str) -> dict[str, str]:
    """Every tag on ``remote`` -> the object its ref names there (one ``git ls-remote``)."""
    proc = subprocess.run(["git", "-C", str(root), "ls-remote", "--tags", "--refs", "--end-of-options", remote],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **_NO_PROMPT})
    if proc.returncode != 0:
        raise git_error(["ls-remote", "--tags", remote], proc.stderr, f"reading the tags on git remote '{remote}'")
    found = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/tags/"):
            found[ref.removeprefix("refs/tags/")] = sha
    return found


def push_tags(root: Path, remote: str, tags: list[str]) -> dict[str, str]:
    """``git push`` of ``tags`` to ``remote``, never forced; returns tag -> git's reason for each one the
    remote rejected (empty: all pushed). The others are pushed even when some are rejected."""
    if not tags:
        return {}
    specs = [f"refs/tags/{t}:refs/tags/{t}" for t in tags]
    proc = subprocess.run(["git", "-C", str(root), "push", "--porcelain", "--no-verify", remote, *specs],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **_NO_PROMPT})
    rejected = {}
    reported = set()
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        flag, _, rest = line.partition("\t")
        ref, _, summary = rest.partition("\t")
        name = ref.partition(":")[2].removeprefix("refs/tags/")
        if name in tags:
            reported.add(name)
            if flag == "!":
                rejected[name] = summary.strip("()[] ") or "rejected"
    if proc.returncode != 0 and not rejected:
        raise git_error(["push", remote], proc.stderr, f"pushing {len(tags)} tag(s) to git remote '{remote}'")
    return rejected


def fetch_tags(root: Path, remote: str, tags: list[str]) -> None:
    """Fetch ``tags`` (absent locally) from ``remote``, with the commits they need; never forced."""
    if not tags:
        return
    specs = [f"refs/tags/{t}:refs/tags/{t}" for t in tags]
    proc = subprocess.run(["git", "-C", str(root), "fetch", "--quiet", "--no-tags", "--end-of-options", remote,
                           *specs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **_NO_PROMPT})
    if proc.returncode != 0:
        raise git_error(["fetch", remote], proc.stderr, f"fetching {len(tags)} tag(s) from git remote '{remote}'")
