"""``git model rollback``: a released model back in the workspace, verified, committed and in prod.

Decide, then act. :func:`gather` reads the facts (the target release, the
model's DVC entry at the release commit -- its ``.dvc`` file, or its ``outs:``
entry in ``dvc.lock`` when a training stage produced it --, what HEAD, the
index and the workspace hold, whether git can commit); the pure
:func:`rollback_plan.plan` turns them into a plan or a refusal (a file to be
overwritten or removed holds content git does not; HEAD is detached; ...).
Then :func:`apply`, in an order where nothing can be lost:

1. the object: in the local DVC cache, else fetched from the default DVC
   remote, else stop naming the md5 -- nothing has been touched yet;
2. refuse when the workspace model holds bytes that are not in the cache
   (they would be lost; ``--force`` discards them);
3. verify the object's md5 (remembered by inode, size and mtime, as DVC's state
   database does, so an object is hashed once);
4. make the new file at a temporary name beside the model with the first
   ``cache.type`` this file system supports, then swap it in with one atomic
   rename (:mod:`gitmodel.placement`): the model path holds the old bytes or
   the new bytes, never a partial file and never nothing;
5. the ``.dvc`` file / ``dvc.lock`` entries and ``metrics/<model>/`` as they are
   at the release commit (committed metrics always describe committed weights);
6. commit exactly those paths (``git commit --only``: the user's other staged
   changes stay staged);
7. assign ``prod`` to the release with a new stage tag (the registry writes it).

Every step looks at the state it finds, so running the rollback again after it
was killed completes it. The whole command holds the repository lock.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, fsutil, gitobjects, gitrepo, project, refs, remotes, revisions, store
from gitmodel import registry as registry_mod
from gitmodel.errors import GitError, GitModelError
from gitmodel.placement import place, prove, put_back, record_proof, remove_if_exists, save_to_cache, workspace_md5
from gitmodel.registry import PROD, Registry, Release
from gitmodel.rollback_plan import (
    Facts,
    FileState,
    RollbackPlan,
    RollbackRefused,
    commit_message,
    default_target,
    model_action,
    plan,
)


@dataclass
class RollbackResult:
    model: str
    path: str
    target: str                    # the version rolled back to
    was: str                       # the version rolled back from (prod holder), or what HEAD tracked
    md5: str
    previous_md5: str | None = None
    method: str | None = None      # how the file was put in place; None when it already held the bytes
    fetched: bool = False
    verified: str = "recorded"     # "recorded" (known good) | "hashed" (one md5 pass now)
    tracked_file: str = ""
    restored: list[str] = field(default_factory=list)  # .dvc / dvc.lock / metrics paths written
    removed: list[str] = field(default_factory=list)   # metrics files of HEAD that the release does not have
    commit: str | None = None
    tag: str | None = None
    no_commit: bool = False
    unchanged: bool = False        # nothing to do: everything already as the target
    notes: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "model", "path", "target", "was", "md5", "previous_md5", "method", "fetched", "verified",
            "tracked_file", "restored", "removed", "commit", "tag", "no_commit", "unchanged", "notes", "message")}


def rollback(model: str, to: str | None = None, *, no_commit: bool = False, force: bool = False,
             wait: float = 0.0, on_wait=None, start: Path | None = None) -> RollbackResult:
    """Roll ``model`` back to release ``to`` (default: the version that held prod before the current one)."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    with registry_mod.writing(root, wait=wait, on_wait=on_wait) as reg:
        release = target_release(root, reg, model, to)
        rel = dvcyaml.model_path(model)
        for folder in {(root / rel).parent, root, root / dvcyaml.METRICS_DIR / model, root / project.STATE_DIR}:
            fsutil.remove_stale_temps(folder)    # left by a rollback that was killed
        return apply(root, reg, plan(gather(root, reg, model, release, commit=not no_commit)), force=force)


def target_release(root: Path, reg: Registry, model: str, to: str | None) -> Release:
    """The release to roll back to: the one ``to`` names (any revision form), else the one that held prod
    before the current holder."""
    release = default_target(reg, model) if to is None else revisions.release_of(root, model, to, reg)
    reg.check_stageable(release)
    return release


# ----------------------------------------------------------------------------- the facts


def _head_label(reg: Registry, model: str, root: Path, rel: str, head: str | None) -> str:
    """What HEAD holds, as a version when it is a release."""
    if head is None:
        return "nothing"
    releases = reg.active_releases(model)
    with gitobjects.ObjectReader(root) as reader:
        md5s = {commit: found[rel] for commit, found in store.tracked_md5s(
            root, [head] + [r.commit for r in releases], [rel], reader=reader, lenient=True).items()}
    match = [r for r in releases if md5s.get(r.commit) and md5s.get(r.commit) == md5s.get(head)]
    if match:
        return str(match[-1].version)
    return f"unreleased {md5s[head][:8]}" if md5s.get(head) else "nothing"


def _blob(found) -> bytes | None:
    return found[1] if found and found[0] == "blob" else None


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8") if data is not None else None


def gather(root: Path, reg: Registry, model: str, release: Release, commit: bool) -> Facts:
    """Everything the plan decides on, read (every blob through one ``git cat-file``); writes nothing."""
    rel = dvcyaml.model_path(model)
    metrics_rel = f"{dvcyaml.METRICS_DIR}/{model}"
    head = gitrepo.head_commit(root)
    holder = reg.holder(model, PROD)
    prod_version = holder.version if holder is not None else None
    lock_path = root / store.LOCK_FILE
    workspace_metrics = sorted(p.relative_to(root).as_posix() for p in (root / metrics_rel).rglob("*")
                               if p.is_file() and not p.name.startswith(fsutil.TMP_PREFIX)) \
        if (root / metrics_rel).is_dir() else []
    with gitobjects.ObjectReader(root) as reader:
        specs = [f"{release.commit}:{rel}.dvc", f"{release.commit}:{store.LOCK_FILE}"]
        if head:
            specs.append(f"{head}:{store.LOCK_FILE}")
        blobs = [_blob(b) for b in reader.read_many(specs)] + [None]
        release_metrics = gitobjects.files_at(root, release.commit, metrics_rel, reader)
        head_metrics = gitobjects.files_at(root, head, metrics_rel, reader) if head else {}
        names = sorted({f"{rel}.dvc", *release_metrics, *head_metrics, *workspace_metrics})
        found = [_blob(b) for b in reader.read_many([f":{p}" for p in names] + [f"HEAD:{p}" for p in names])]
    files = {}
    for i, p in enumerate(names):
        f = root / p
        files[p] = FileState(f.read_bytes() if f.is_file() else None, found[i], found[len(names) + i])
    current = store.tracked(root, root / rel)
    facts = Facts(
        model, release, commit, head, prod_version,
        head_label=None if prod_version not in (None, release.version) else _head_label(reg, model, root, rel, head),
        release_dvc=blobs[0], release_lock=_text(blobs[1]), head_lock=_text(blobs[2]),
        workspace_lock=lock_path.read_text("utf-8") if lock_path.is_file() else None,
        tracked_now=None if current is None else ("lock" if current.source.name == store.LOCK_FILE else "dvc"),
        release_metrics=release_metrics, head_metrics=head_metrics, workspace_metrics=workspace_metrics,
        files=files)
    if commit:
        facts.branch = gitrepo.current_branch(root)
        facts.busy, facts.git_locks = gitrepo.commit_obstacles(root, facts.branch)
        try:
            facts.identity = gitrepo.identity(root)
        except GitModelError as e:
            facts.identity_error = e
    return facts


# ----------------------------------------------------------------------------- applying the plan


def _object(root: Path, md5: str) -> tuple[Path, bool]:
    """(cache path, fetched now) of the object; fetched from the default remote when missing."""
    obj = store.cache_path(root, md5)
    if obj.is_file():
        return obj, False
    return remotes.fetch_object(root, md5), True


class _AlreadyThere(Exception):
    """The workspace model turned out to hold the target's bytes: nothing to rename."""


def apply(root: Path, reg: Registry, p: RollbackPlan, force: bool = False) -> RollbackResult:
    """Carry out the plan: the model, its DVC entry and metrics, the commit, the prod tag. A failure before
    the commit puts every file back; after it, the error says how to finish."""
    rel, path = p.rel, root / p.rel
    result = RollbackResult(p.model, rel, str(p.release.version), p.was, p.md5, no_commit=not p.commit,
                            tracked_file=p.tracked_file)
    current = store.tracked(root, path)
    tracked_md5 = current.md5 if current is not None else None

    # 1. the object: in the cache, else fetched; else stop, naming the md5 -- nothing touched yet
    obj, result.fetched = _object(root, p.md5)
    hashes = project.hash_cache(root)

    # 2. the workspace model: replaced only when its bytes are in the cache (or --force)
    if path.is_dir() and not path.is_symlink():
        raise RollbackRefused(f"{rel} is a folder, not a model file")
    exists = path.is_file()               # a dangling symlink holds nothing to lose
    ws_md5 = workspace_md5(root, path, hashes, [m for m in (tracked_md5, p.md5) if m]) if exists else None
    obj_verified = hashes.known(obj) == p.md5
    proof = None
    if exists and ws_md5 is None:
        if obj_verified:
            ws_md5 = record_proof(hashes, path, *prove(root, path, tracked_md5))
        else:
            # 3. the object must be hashed anyway: work out the workspace's bytes meanwhile, on another core
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=1)
            proof = pool.submit(prove, root, path, tracked_md5)
            pool.shutdown(wait=False)
    action = "replace"

    def decide(md5: str | None) -> str:
        nonlocal ws_md5, action
        ws_md5 = result.previous_md5 = md5
        in_cache = md5 is not None and store.cache_path(root, md5).is_file()
        action = model_action(rel, exists, md5, p.md5, tracked_md5, in_cache, force)
        return action

    def before_replace() -> None:
        """Runs once the new file is complete at its temporary name, before it is renamed over the model."""
        if proof is not None and decide(record_proof(hashes, path, *proof.result())) == "keep":
            raise _AlreadyThere()
        if action == "save-and-replace":
            save_to_cache(root, path, ws_md5)

    replace = decide(ws_md5) != "keep" if proof is None else True

    # --- from here on the workspace changes; a failure puts every file back
    snapshot = fsutil.Snapshot(*(root / t for t in p.touched))
    replaced = False
    deleting = None
    try:
        # 3 + 4. the verified object -> the workspace, atomically
        if replace:
            types = store.cache_types(root)
            try:
                placed = place(obj, path, types, p.md5, verified=obj_verified, before_replace=before_replace)
            except _AlreadyThere:
                placed = None             # the workspace held the target's bytes already
            if not obj_verified:          # place() verified it before the rename (or before finding that out)
                result.verified = "hashed"
                hashes.record(obj, p.md5)
            if placed is not None:
                replaced = True
                result.method = placed.method
                if placed.old is not None:       # deleted while git works; joined before returning
                    deleting = threading.Thread(target=remove_if_exists, args=(placed.old,), name="gitmodel-unlink")
                    deleting.start()
                if placed.method not in types:   # nothing the config asks for works here (DVC would fail)
                    result.notes.append(
                        f"cache.type {','.join(types)}: {', '.join(placed.unsupported)} not supported by this "
                        f"file system (found out before the model was touched); used {placed.method}")
                hashes.record(path, p.md5)
        message = commit_message(p, ws_md5)

        # 5. the DVC entry and the model's metrics, as at the release
        for rel_path, data in p.restore:
            fsutil.atomic_write(root / rel_path, data)
            result.restored.append(rel_path)
        for rel_path in p.remove:
            os.unlink(root / rel_path)
            result.removed.append(rel_path)
        result.message = message.splitlines()[0]
        if not p.commit:
            result.unchanged = not replaced and not result.restored and not result.removed
            return result

        # 6. commit exactly those paths
        if p.lock_left_out:
            result.notes.append("dvc.lock has uncommitted changes of other stages: the model's entries were "
                                "restored in it but it was left out of the commit")
        result.commit = gitrepo.commit_paths(root, p.commit_paths, message)
    except BaseException:
        snapshot.restore()
        if replaced:
            put_back(root, path, ws_md5, exists)
        raise
    finally:
        if deleting is not None:
            deleting.join()
    # 7. prod -> the release. The commit was the point of no return: a failure here says how to finish.
    if p.assign_prod:
        result.tag = _assign_prod(root, reg, p, result.commit)
    result.unchanged = not replaced and not result.restored and not result.removed and result.commit is None \
        and result.tag is None
    return result


def _assign_prod(root: Path, reg: Registry, p: RollbackPlan, rollback_commit: str | None) -> str:
    if rollback_commit is None:
        head = gitrepo.head_commit(root)
        subject = gitrepo.commit_info(root, [head]).get(head, {}).get("subject", "")
        if subject.startswith(f"Roll back {p.model} to {p.release.version} "):
            rollback_commit = head     # made by a rollback that was killed before its tag
    trailers = {"Gate": "skipped: rollback", "Rollback-From": p.was, "Rollback-Commit": rollback_commit}
    try:
        # the registry read at the start still holds: no other git-model writer runs (the lock)
        return reg.assign(p.model, PROD, p.release, p.identity, trailers).tag
    except GitError as e:
        raise GitError(f"the rollback was committed but prod could not be assigned: {e.message}",
                       hint=f"run `git model rollback {p.model} --to {p.release.version}` again to finish it") from e
